// Package envoy_test keeps the Envoy configs in this directory loadable:
// each YAML file must parse into Envoy's own Bootstrap proto, every
// typed_config resolved and no unknown field, so the examples cannot rot.
package envoy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

func TestConfigsLoadIntoBootstrap(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Envoy configs found: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := yaml.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("YAML: %v", err)
			}
			js, err := json.Marshal(doc)
			if err != nil {
				t.Fatalf("to JSON: %v", err)
			}
			var b bootstrapv3.Bootstrap
			// DiscardUnknown false: a misspelt field fails, as in Envoy.
			if err := (protojson.UnmarshalOptions{}).Unmarshal(js, &b); err != nil {
				t.Fatalf("not a valid Envoy Bootstrap: %v", err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatalf("Envoy's validation rules: %v", err)
			}
		})
	}
}
