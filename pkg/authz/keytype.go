package authz

import (
	"fmt"

	"github.com/keygate/keygate/pkg/apikey"
)

// KeyType is what a key is for (SPEC §1).
type KeyType uint8

const (
	KeyTypeUnknown KeyType = iota
	// KeyTypeService is a tenant-level service access key: one app and one tenant.
	KeyTypeService
	// KeyTypeApp is an app-level service access key: one app, no tenant.
	KeyTypeApp
	// KeyTypeAccount is an account access key, only for the Account API.
	KeyTypeAccount
)

var keyTypeNames = [...]string{"unknown", "service", "app", "account"}

func (t KeyType) String() string {
	if int(t) < len(keyTypeNames) {
		return keyTypeNames[t]
	}
	return "unknown"
}

// ParseKeyType reads the names used in files, flags and the API.
func ParseKeyType(s string) (KeyType, error) {
	switch s {
	case "service":
		return KeyTypeService, nil
	case "app":
		return KeyTypeApp, nil
	case "account":
		return KeyTypeAccount, nil
	}
	return KeyTypeUnknown, fmt.Errorf("unknown key type %q (want service, app or account)", s)
}

// KeyTypes is a set of key types, as a service's key_types declares it.
type KeyTypes uint8

// With returns the set with t added.
func (s KeyTypes) With(t KeyType) KeyTypes { return s | 1<<t }

// Has reports whether t is in the set.
func (s KeyTypes) Has(t KeyType) bool { return s&(1<<t) != 0 }

// AccountAPIService is the service name of keygate's own Account API, which
// only account keys may call. It is built in: routes files do not declare it.
const AccountAPIService = "account-api"

// SecretKind is the prefix kind of a key type's generated secrets
// (kg_sak_, kg_alsak_, kg_aak_); "" for an unknown type.
func (t KeyType) SecretKind() apikey.Kind {
	switch t {
	case KeyTypeService:
		return apikey.KindService
	case KeyTypeApp:
		return apikey.KindApp
	case KeyTypeAccount:
		return apikey.KindAccount
	}
	return ""
}
