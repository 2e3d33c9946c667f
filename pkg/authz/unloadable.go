package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keygate/keygate/pkg/apikey"
)

// ErrKeyUnloadable is the error behind the store_unavailable a request
// gets with a key that is stored but cannot be loaded: the key exists, so
// "unknown key" would be wrong, and it cannot be decided, so nothing else
// is right either.
var ErrKeyUnloadable = errors.New("authz: the stored key cannot be loaded; see the log and /readyz")

// Unloadable returns the record that stands for a stored key whose fields
// do not compile (written past the API, or under rules that have changed):
// its digests, so that a cache keeps them in its digest set, and its
// account and id, for reports; nothing it could allow with. The engine
// answers store_unavailable for it. cause is the compile error (or a
// recovered panic); only the names of the fields it blames are kept, so
// that no stored value, a hash least of all, reaches a log. The error is
// for a key whose current hash does not parse either: then there is no
// digest to stand for.
func Unloadable(spec KeySpec, cause error) (*Key, error) {
	alg, d, err := apikey.ParseHash(spec.Hash)
	if err != nil {
		return nil, fmt.Errorf("key %q of account %q: hash: %w", spec.ID, spec.AccountID, err)
	}
	why := "does not compile: " + BlamedFields(cause)
	k := &Key{
		Spec: KeyInfo{ID: spec.ID, Type: spec.Type, Name: spec.Name,
			KeyOwner: &KeyOwner{AccountID: spec.AccountID}, KeyAccess: &KeyAccess{}},
		Digest: d,
		extra:  &keyExtra{unloadable: why},
	}
	if prevAlg, prev, err := apikey.ParseHash(spec.PreviousHash); err == nil && prevAlg == alg {
		k.extra.previous, k.HasPrevious = prev, true
		k.Spec.previousValidUntil = unixTimeOf(spec.PreviousValidUntil, false)
	}
	k.setAlgorithm(alg)
	k.size = k.computeSize()
	return k, nil
}

// Unloadable reports why the record stands for a key that cannot be
// loaded (see Unloadable), or "" for a record that can decide.
func (k *Key) Unloadable() string {
	if k.extra == nil {
		return ""
	}
	return k.extra.unloadable
}

// BlamedFields names the fields a compile error blames, sorted and
// comma-separated ("ip_filters, scope"), or "unknown fields" when it
// names none (a recovered panic).
func BlamedFields(err error) string {
	var fields []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *FieldError:
			if !slices.Contains(fields, e.Field) {
				fields = append(fields, e.Field)
			}
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	if len(fields) == 0 {
		return "unknown fields"
	}
	slices.Sort(fields)
	return strings.Join(fields, ", ")
}
