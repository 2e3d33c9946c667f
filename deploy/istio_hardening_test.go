package deploy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// istioHardeningErrors: what the Istio manifests must do for keygate's
// decisions to hold in a mesh (SPEC §9, issue 13): every proxy normalises
// paths the way keygate reads them (meshConfig.pathNormalization
// DECODE_AND_MERGE_SLASHES: %2F and %5C decoded, dot segments resolved,
// slashes merged, before any check), and refuses header names with
// underscores (an EnvoyFilter merging headers_with_underscores_action into
// every HTTP connection manager of the mesh).
func istioHardeningErrors(docs []doc) []error {
	var errs []error
	meshes := 0
	for _, d := range docs {
		var mesh any
		switch {
		case d.kind() == "IstioOperator":
			mesh = get(d.obj, "spec", "meshConfig")
		case d.kind() == "ConfigMap" && d.name() == "istio":
			if err := yaml.Unmarshal([]byte(str(d.obj, "data", "mesh")), &mesh); err != nil {
				errs = append(errs, fmt.Errorf("%s: data.mesh: %v", d, err))
			}
		default:
			continue
		}
		if mesh == nil {
			continue
		}
		meshes++
		if n := str(mesh, "pathNormalization", "normalization"); n != "DECODE_AND_MERGE_SLASHES" {
			errs = append(errs, fmt.Errorf("%s: meshConfig.pathNormalization.normalization %q, want DECODE_AND_MERGE_SLASHES", d, n))
		}
	}
	if meshes == 0 {
		errs = append(errs, errors.New("no meshConfig"))
	}

	rejecting := 0
	filters, ferrs := istioKind(docs, "EnvoyFilter", "networking.istio.io/")
	errs = append(errs, ferrs...)
	for _, d := range filters {
		meshWide := str(d.obj, "metadata", "namespace") == "istio-system" &&
			get(d.obj, "spec", "workloadSelector") == nil && get(d.obj, "spec", "targetRefs") == nil
		for i, p := range list(d.obj, "spec", "configPatches") {
			where := fmt.Sprintf("%s: configPatches[%d]", d, i)
			if str(p, "applyTo") != "NETWORK_FILTER" || str(p, "match", "listener", "filterChain", "filter", "name") != "envoy.filters.network.http_connection_manager" {
				continue
			}
			tc := get(p, "patch", "value", "typed_config")
			if tc == nil {
				errs = append(errs, fmt.Errorf("%s: no patch.value.typed_config", where))
				continue
			}
			// Envoy's own proto, unknown fields refused: a misspelt
			// field would be dropped by Istio without a word.
			js, err := json.Marshal(tc)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", where, err))
				continue
			}
			var a anypb.Any
			if err := protojson.Unmarshal(js, &a); err != nil {
				errs = append(errs, fmt.Errorf("%s: typed_config is no Envoy config: %v", where, err))
				continue
			}
			var h hcmv3.HttpConnectionManager
			if err := a.UnmarshalTo(&h); err != nil {
				errs = append(errs, fmt.Errorf("%s: typed_config is no HttpConnectionManager: %v", where, err))
				continue
			}
			if h.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() != corev3.HttpProtocolOptions_REJECT_REQUEST {
				continue
			}
			if op := str(p, "patch", "operation"); op != "MERGE" {
				errs = append(errs, fmt.Errorf("%s: patch operation %q, want MERGE (anything else replaces Istio's connection manager)", where, op))
			}
			if c := str(p, "match", "context"); c != "ANY" {
				errs = append(errs, fmt.Errorf("%s: match.context %q: want ANY, so gateways and sidecars both refuse underscore headers", where, c))
			}
			if !meshWide {
				errs = append(errs, fmt.Errorf("%s: not mesh-wide: put it in istio-system without a workloadSelector", d))
			}
			rejecting++
		}
	}
	if rejecting == 0 {
		errs = append(errs, errors.New("no EnvoyFilter sets headers_with_underscores_action: REJECT_REQUEST on the HTTP connection managers"))
	}
	return errs
}

func TestIstioHardening(t *testing.T) {
	var docs []doc
	for _, f := range yamlFiles(t, "istio") {
		docs = append(docs, readDocs(t, f)...)
	}
	for _, err := range istioHardeningErrors(docs) {
		t.Error(err)
	}
}

func TestIstioHardeningCheckFails(t *testing.T) {
	parse := func(src string) doc {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(src), &m); err != nil {
			t.Fatal(err)
		}
		return doc{file: "test.yaml", obj: m}
	}
	mesh := parse(`
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: {name: m, namespace: istio-system}
spec:
  meshConfig:
    pathNormalization: {normalization: BASE}`)
	filter := parse(`
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: f, namespace: istio-system}
spec:
  configPatches:
    - applyTo: NETWORK_FILTER
      match:
        context: GATEWAY
        listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}
      patch:
        operation: MERGE
        value:
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
            common_http_protocol_options: {headers_with_underscores_action: REJECT_REQUEST}`)
	misspelt := parse(`
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: f, namespace: istio-system}
spec:
  configPatches:
    - applyTo: NETWORK_FILTER
      match:
        context: ANY
        listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}
      patch:
        operation: MERGE
        value:
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
            common_http_protocol_option: {headers_with_underscores_action: REJECT_REQUEST}`)
	cases := []struct {
		name string
		docs []doc
		want []string
	}{
		{"BASE normalisation, gateway only", []doc{mesh, filter}, []string{"DECODE_AND_MERGE_SLASHES", "match.context"}},
		{"no filter", []doc{mesh}, []string{"no EnvoyFilter"}},
		{"misspelt field in the patch", []doc{misspelt}, []string{"no meshConfig", "common_http_protocol_option", "no EnvoyFilter"}},
	}
	for _, c := range cases {
		err := errors.Join(istioHardeningErrors(c.docs)...)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: got %v, want an error naming %q", c.name, err, w)
			}
		}
	}
}
