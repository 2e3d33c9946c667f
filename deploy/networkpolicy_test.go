package deploy_test

import (
	"slices"
	"testing"
)

// checkNetworkPolicies: with a database (the shipped production set),
// every keygate pod is selected by an Ingress NetworkPolicy; each policy
// selects pods that exist; every rule names its sources (a rule without
// "from" would admit anyone) and ports those pods expose; and every port
// a pod exposes is admitted by some rule (else a probe-less listener,
// /metrics say, would be unreachable). Kubelet probes need no rule: traffic
// from a pod's own node is always allowed.
func checkNetworkPolicies(t *testing.T, s *kset, ws []workload, database bool) {
	nps := s.of("NetworkPolicy")
	if len(nps) == 0 {
		if database {
			t.Error("no NetworkPolicy: Check, the Account API and /metrics would be open to every pod")
		}
		return
	}
	admitted := map[string]map[string]bool{} // Deployment → container port names admitted
	for _, np := range nps {
		if v := str(np.obj, "apiVersion"); v != "networking.k8s.io/v1" {
			t.Errorf("%s: apiVersion %q", np, v)
		}
		if types := list(np.obj, "spec", "policyTypes"); !slices.Contains(types, any("Ingress")) {
			t.Errorf("%s: policyTypes %v lacks Ingress", np, types)
		}
		sel := labels(np.obj, "spec", "podSelector", "matchLabels")
		var selected []workload
		for _, w := range ws {
			if len(sel) > 0 && selects(sel, w.labels) {
				selected = append(selected, w)
			}
		}
		if len(selected) == 0 {
			t.Errorf("%s: podSelector %v selects no keygate pods", np, sel)
			continue
		}
		for i, rule := range list(np.obj, "spec", "ingress") {
			checkIngressRule(t, np, i, rule, selected, admitted)
		}
	}
	for _, w := range ws {
		for name := range w.c.ports {
			if !admitted[w.dep.name()][name] {
				t.Errorf("%s: no NetworkPolicy rule admits its %s port", w.dep, name)
			}
		}
	}
}

// checkIngressRule checks one ingress rule of np against the workloads it
// selects and records the ports it admits.
func checkIngressRule(t *testing.T, np doc, i int, rule any, selected []workload, admitted map[string]map[string]bool) {
	from := list(rule, "from")
	if len(from) == 0 {
		t.Errorf("%s: ingress[%d] has no from: it admits every source", np, i)
	}
	for _, peer := range from {
		if len(labels(peer, "namespaceSelector", "matchLabels")) == 0 && get(peer, "ipBlock") == nil {
			t.Errorf("%s: ingress[%d] peer %v names no namespace", np, i, peer)
		}
	}
	ports := list(rule, "ports")
	if len(ports) == 0 {
		t.Errorf("%s: ingress[%d] lists no ports: it admits every port", np, i)
	}
	for _, p := range ports {
		for _, w := range selected {
			n, ok := w.c.port(get(p, "port"))
			if !ok {
				t.Errorf("%s: ingress[%d] port %v is not a container port of %s", np, i, get(p, "port"), w.dep)
				continue
			}
			if admitted[w.dep.name()] == nil {
				admitted[w.dep.name()] = map[string]bool{}
			}
			admitted[w.dep.name()][w.c.portName(n)] = true
		}
	}
}
