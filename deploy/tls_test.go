package deploy_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTLSExample keeps deploy/kubernetes/tls consistent: each patch sets
// only variables keygate reads, every file it names is in the mounted
// Secret volume (mounted whole: a subPath mount never sees an update), and
// that Secret is the one cert-manager writes for keygate's certificate,
// whose names cover the Service of each patched Deployment.
func TestTLSExample(t *testing.T) {
	k := readKeygate(t)
	dir := filepath.Join("kubernetes", "tls")
	secrets := map[string]string{} // Certificate name → Secret
	names := map[string][]string{} // Certificate name → DNS names
	for _, d := range readDocs(t, filepath.Join(dir, "certificates.yaml")) {
		if d.kind() == "Certificate" {
			secrets[d.name()] = str(d.obj, "spec", "secretName")
			for _, n := range list(d.obj, "spec", "dnsNames") {
				names[d.name()] = append(names[d.name()], n.(string))
			}
		}
	}
	server := secrets["keygate-server"]
	if server == "" {
		t.Fatalf("certificates.yaml: no keygate-server Certificate with a secretName (%v)", secrets)
	}
	for _, tc := range []struct {
		file, deployment, service string
		want                      []string
	}{
		{"deployment-patch.yaml", "keygate", "keygate",
			[]string{"authz-tls-cert-file", "authz-tls-key-file", "authz-tls-client-ca-file"}},
		{"deployment-account-patch.yaml", "keygate-account", "keygate-account",
			[]string{"account-tls-cert-file", "account-tls-key-file"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			patch := readDocs(t, filepath.Join(dir, tc.file))
			if len(patch) != 1 || patch[0].kind() != "Deployment" || patch[0].name() != tc.deployment {
				t.Fatalf("%s: want one patch of Deployment %s", tc.file, tc.deployment)
			}
			set := checkTLSPatch(t, k, patch[0], server)
			for _, want := range tc.want {
				if !strings.Contains(strings.Join(set, " "), want) {
					t.Errorf("the patch does not set --%s", want)
				}
			}
			svc := tc.service + ".keygate.svc.cluster.local"
			if !slices.Contains(names["keygate-server"], svc) {
				t.Errorf("keygate-server's dnsNames %v lack %s, the name clients of %s dial", names["keygate-server"], svc, tc.deployment)
			}
		})
	}
}

// checkTLSPatch checks one Deployment patch against the Secret it must
// mount and returns the flags its environment sets.
func checkTLSPatch(t *testing.T, k *keygate, patch doc, secret string) []string {
	t.Helper()
	spec, _ := podTemplate(patch)
	mounts := map[string]string{} // volume name → mount path
	for _, c := range list(spec, "containers") {
		for _, m := range list(c, "volumeMounts") {
			if get(m, "subPath") != nil {
				t.Errorf("volume %s is mounted with subPath: Secret updates would never reach keygate", str(m, "name"))
			}
			mounts[str(m, "name")] = str(m, "mountPath")
		}
	}
	var tlsDir string
	for _, v := range list(spec, "volumes") {
		if str(v, "secret", "secretName") == secret {
			tlsDir = mounts[str(v, "name")]
		}
	}
	if tlsDir == "" {
		t.Fatalf("the patch mounts no volume of Secret %s", secret)
	}
	var set []string
	for _, c := range list(spec, "containers") {
		for _, e := range list(c, "env") {
			name, value := str(e, "name"), str(e, "value")
			flag, ok := k.envs[name]
			if !ok {
				t.Errorf("env %s: keygate reads no such variable", name)
				continue
			}
			set = append(set, flag)
			if strings.Contains(flag, "tls-") && !strings.HasPrefix(value, tlsDir+"/") {
				t.Errorf("env %s=%s: not in the mounted Secret %s", name, value, tlsDir)
			}
		}
	}
	return set
}
