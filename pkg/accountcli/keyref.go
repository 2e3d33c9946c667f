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
	k, id, err := lookupKey(cl, arg)
	if err == nil && k == nil {
		// Neither lookup was allowed: GetKey's refusal says why.
		_, err = call(cl, cl.api.GetKey, &accountv1.GetKeyRequest{Id: id})
	}
	return k, err
}

// keyID resolves arg to a key id. A key whose scope allows neither key
// nor keys (the queries) may still change a key by id: the argument is then taken
// as the id, and the server decides.
func keyID(cl *client, arg string) (string, error) {
	_, id, err := lookupKey(cl, arg)
	return id, err
}

// lookupKey looks arg up as an id and as a name. It returns the key found
// and its id; with both lookups refused by the caller's scope, no key and
// arg as the id.
func lookupKey(cl *client, arg string) (*accountv1.Key, string, error) {
	got, err := call(cl, cl.api.GetKey, &accountv1.GetKeyRequest{Id: arg})
	idDenied := status.Code(err) == codes.PermissionDenied
	if err != nil && !idDenied && status.Code(err) != codes.NotFound && status.Code(err) != codes.InvalidArgument {
		return nil, "", err
	}
	byID := got.GetKey()
	named, lerr := call(cl, cl.api.ListKeys, &accountv1.ListKeysRequest{Name: arg, PageSize: 2})
	nameDenied := status.Code(lerr) == codes.PermissionDenied
	switch {
	case lerr != nil && byID != nil:
		return byID, byID.GetId(), nil // an id; the name lookup is only a check
	case lerr != nil && nameDenied && idDenied:
		return nil, arg, nil
	case lerr != nil && nameDenied:
		return nil, "", err
	case lerr != nil && err != nil && status.Code(lerr) == codes.InvalidArgument:
		return nil, "", err
	case lerr != nil:
		return nil, "", lerr
	}
	var byName *accountv1.Key
	if ks := named.GetKeys(); len(ks) > 0 {
		byName = ks[0]
	}
	switch {
	case byID != nil && byName != nil && byName.GetId() != byID.GetId():
		return nil, "", fmt.Errorf("%q is the id of key %s and the name of key %s: give the id of the one you mean",
			arg, withName(byID.GetId(), byID.GetName()), withName(byName.GetId(), byName.GetName()))
	case byID != nil:
		return byID, byID.GetId(), nil
	case byName != nil:
		return byName, byName.GetId(), nil
	case idDenied:
		return nil, arg, nil // not a name; perhaps an id the caller may change but not read
	}
	msg := fmt.Sprintf("no key has the id or name %q: list the keys with keygate keys list (--name NAME to look one up)", arg)
	return nil, "", &statusError{st: status.New(codes.NotFound, msg), msg: "NotFound: " + msg}
}

// printWarnings prints the server's warnings about what it accepted to
// stderr, one line each; stdout keeps the command's output.
func printWarnings(cl *client, ws []string) {
	for _, w := range ws {
		fmt.Fprintln(cl.env.Stderr, "warning:", w)
	}
}
