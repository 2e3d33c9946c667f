package accountcli

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// resolveKey finds the key a command's argument names: by id, else by
// name (names are unique in an account). An argument that is the id of
// one key and the name of another is refused: which one was meant is the
// user's to say, with the id.
func resolveKey(cl *client, arg string) (*accountv1.Key, error) {
	got, err := call(cl, cl.api.GetKey, &accountv1.GetKeyRequest{Id: arg})
	if err != nil && status.Code(err) != codes.NotFound && status.Code(err) != codes.InvalidArgument {
		return nil, err
	}
	byID := got.GetKey()
	named, lerr := call(cl, cl.api.ListKeys, &accountv1.ListKeysRequest{Name: arg, PageSize: 2})
	if lerr != nil {
		if byID != nil {
			return byID, nil // an id; the name lookup is only a check
		}
		if err != nil && status.Code(lerr) == codes.InvalidArgument {
			return nil, err
		}
		return nil, lerr
	}
	var byName *accountv1.Key
	if ks := named.GetKeys(); len(ks) > 0 {
		byName = ks[0]
	}
	switch {
	case byID != nil && byName != nil && byName.GetId() != byID.GetId():
		return nil, fmt.Errorf("%q is the id of key %s and the name of key %s: give the id of the one you mean", arg, withName(byID.GetId(), byID.GetName()), withName(byName.GetId(), byName.GetName()))
	case byID != nil:
		return byID, nil
	case byName != nil:
		return byName, nil
	}
	return nil, fmt.Errorf("NotFound: no key has the id or name %q: list the keys with keygate keys list (--name NAME to look one up)", arg)
}

// keyID resolves arg to a key id (resolveKey).
func keyID(cl *client, arg string) (string, error) {
	k, err := resolveKey(cl, arg)
	if err != nil {
		return "", err
	}
	return k.GetId(), nil
}

// printWarnings prints the server's warnings about what it accepted to
// stderr, one line each; stdout keeps the command's output.
func printWarnings(cl *client, ws []string) {
	for _, w := range ws {
		fmt.Fprintln(cl.env.Stderr, "warning:", w)
	}
}
