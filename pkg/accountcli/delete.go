package accountcli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/term"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/account"
)

// ownerDelete are the arguments of `apps delete` and `tenants delete`.
type ownerDelete struct {
	ownerRef
	Cascade bool `name:"cascade" help:"Delete its keys with it (each audited as key.delete). On a terminal, asks first, showing how many."`
	Yes     bool `name:"yes" short:"y" help:"Do not ask before --cascade deletes keys; required when stdin is not a terminal."`
}

// deleteOwner deletes an app or tenant (noun) with del(cascade). Without
// --cascade the server refuses one that has keys, saying how many. With
// it, keys are only deleted once confirmed: by --yes, or on a terminal by
// answering y to a question showing the count, which a first call without
// cascade learns (and which deletes it outright when it has none).
func (c *ownerDelete) deleteOwner(cl *client, noun string, del func(cascade bool) (proto.Message, error)) error {
	if !c.Cascade || c.Yes {
		r, err := del(c.Cascade)
		if err != nil {
			return err
		}
		return deleted(cl.out, r, noun, c.ID)
	}
	r, err := del(false)
	n, ok := keyCount(err)
	if !ok {
		if err != nil {
			return err
		}
		return deleted(cl.out, r, noun, c.ID)
	}
	if !isTerminal(cl.env) {
		return fmt.Errorf("%s %s has %s and stdin is not a terminal to confirm: add --yes to delete it with them", noun, c.ID, keysPhrase(n))
	}
	if !confirm(cl.env, fmt.Sprintf("delete %s %s and its %s? [y/N] ", noun, c.ID, keysPhrase(n))) {
		return fmt.Errorf("%s %s not deleted", noun, c.ID)
	}
	if r, err = del(true); err != nil {
		return err
	}
	return deleted(cl.out, r, noun, c.ID)
}

// keyCount is the number of keys a has_keys refusal reports.
func keyCount(err error) (int, bool) {
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != codes.FailedPrecondition {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == account.ReasonHasKeys {
			n, err := strconv.Atoi(info.GetMetadata()["keys"])
			return n, err == nil
		}
	}
	return 0, false
}

// keysPhrase is "1 key" or "n keys".
func keysPhrase(n int) string {
	if n == 1 {
		return "1 key"
	}
	return strconv.Itoa(n) + " keys"
}

// isTerminal reports whether stdin is a terminal a person can answer on.
func isTerminal(e *Env) bool {
	if e.IsTerminal != nil {
		return e.IsTerminal()
	}
	f, ok := stdin(e).(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm asks question on stderr and reports whether the answer read from
// stdin is y or yes.
func confirm(e *Env, question string) bool {
	fmt.Fprint(e.Stderr, question)
	line, err := bufio.NewReader(stdin(e)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
