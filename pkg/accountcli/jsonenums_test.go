package accountcli

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

func TestEnumCLIName(t *testing.T) {
	kt := accountv1.KeyType(0).Descriptor()
	ko := accountv1.KeyOrigin(0).Descriptor()
	for _, tc := range []struct {
		value, want string
		origin      bool
	}{
		{"KEY_TYPE_SERVICE", "service", false},
		{"KEY_TYPE_APP", "app", false},
		{"KEY_TYPE_ACCOUNT", "account", false},
		{"KEY_TYPE_UNSPECIFIED", "", false},
		{"KEY_ORIGIN_GENERATED", "generated", true},
		{"KEY_ORIGIN_CUSTOM", "custom", true},
	} {
		ed := kt
		if tc.origin {
			ed = ko
		}
		if got := EnumCLIName(ed, tc.value); got != tc.want {
			t.Errorf("EnumCLIName(%s) = %q, want %q", tc.value, got, tc.want)
		}
	}
	// Every key type the CLI prints in a table is what the JSON says.
	for _, v := range []accountv1.KeyType{accountv1.KeyType_KEY_TYPE_SERVICE, accountv1.KeyType_KEY_TYPE_APP, accountv1.KeyType_KEY_TYPE_ACCOUNT} {
		if got := EnumCLIName(kt, v.String()); got != TypeName(v) {
			t.Errorf("JSON %q, table %q", got, TypeName(v))
		}
	}
}

func TestMarshalSpellsEnumsAsFlags(t *testing.T) {
	k := &accountv1.Key{Id: "k1", Type: accountv1.KeyType_KEY_TYPE_SERVICE, Origin: accountv1.KeyOrigin_KEY_ORIGIN_CUSTOM, Description: "a <b> & c"}
	b, err := marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"type": "service"`, `"origin": "custom"`, `"description": "a <b> & c"`} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in\n%s", want, s)
		}
	}
	if strings.Contains(s, "KEY_") {
		t.Errorf("proto enum name left in\n%s", s)
	}
	// Field order stays the proto's: id comes before type.
	if strings.Index(s, `"id"`) > strings.Index(s, `"type"`) {
		t.Errorf("field order changed:\n%s", s)
	}
	// A list (the page of keys) is rewritten element by element.
	var out strings.Builder
	p := printer{w: &out, json: true}
	if err := p.list([]proto.Message{k, k}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), `"type": "service"`) != 2 {
		t.Errorf("list not rewritten:\n%s", out.String())
	}
}
