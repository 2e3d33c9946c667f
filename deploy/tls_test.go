package deploy_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestTLSExample keeps deploy/kubernetes/tls consistent: the patch sets
// only variables keygate reads, every file it names is in the mounted
// Secret volume (mounted whole: a subPath mount never sees an update), and
// that Secret is the one cert-manager writes for keygate's certificate.
func TestTLSExample(t *testing.T) {
	k := readKeygate(t)
	dir := filepath.Join("kubernetes", "tls")
	secrets := map[string]string{} // Certificate name → Secret
	for _, d := range readDocs(t, filepath.Join(dir, "certificates.yaml")) {
		if d.kind() == "Certificate" {
			secrets[d.name()] = str(d.obj, "spec", "secretName")
		}
	}
	server := secrets["keygate-server"]
	if server == "" {
		t.Fatalf("certificates.yaml: no keygate-server Certificate with a secretName (%v)", secrets)
	}
	patch := readDocs(t, filepath.Join(dir, "deployment-patch.yaml"))
	if len(patch) != 1 || patch[0].kind() != "Deployment" || patch[0].name() != "keygate" {
		t.Fatalf("deployment-patch.yaml: want one patch of Deployment keygate")
	}
	spec, _ := podTemplate(patch[0])
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
		if str(v, "secret", "secretName") == server {
			tlsDir = mounts[str(v, "name")]
		}
	}
	if tlsDir == "" {
		t.Fatalf("deployment-patch.yaml mounts no volume of Secret %s", server)
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
	for _, want := range []string{"authz-tls-cert-file", "authz-tls-key-file", "authz-tls-client-ca-file"} {
		if !strings.Contains(strings.Join(set, " "), want) {
			t.Errorf("the patch does not set --%s", want)
		}
	}
}
