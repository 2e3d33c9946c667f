package console

import (
	"fmt"

	"github.com/keygate/keygate/pkg/account"
)

// With a keys file (serve --keys-file) the account service is read-only
// (account.Service.ReadOnly): Authorize refuses every mutation, so Can
// hides every create, edit and delete button, and a form posted anyway
// is answered 409 with readOnlyMessage.

// readOnlyMessage words the refusal of a change over a keys file.
func readOnlyMessage(e *account.Error) string {
	return fmt.Sprintf("This keygate serves a keys file: the console is read-only. Edit %s and keygate reloads it.", e.Metadata["file"])
}

// ReadOnly is the notice every page of a read-only console shows; "" when
// the console can change things.
func (p *page) ReadOnly() string {
	if p.h == nil {
		return ""
	}
	if e := p.h.svc.ReadOnly(); e != nil {
		return readOnlyMessage(e)
	}
	return ""
}
