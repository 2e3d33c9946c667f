package accountcli

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"golang.org/x/term"
)

// SecretInput is where a command reads a secret from. On a terminal it
// prompts "secret: " on stderr and reads one line without echo, so the
// secret never shows on screen or in the scrollback; the line is returned
// with its newline, as a pipe would give it. Otherwise it is stdin as is.
func SecretInput(e *Env) (io.Reader, error) {
	if !isTerminal(e) {
		return stdin(e), nil
	}
	fmt.Fprint(e.Stderr, "secret: ")
	b, err := readPassword(e)
	fmt.Fprintln(e.Stderr) // the Enter that ended the secret was not echoed either
	if err != nil {
		return nil, fmt.Errorf("reading the secret from the terminal: %w", err)
	}
	return bytes.NewReader(append(b, '\n')), nil
}

func readPassword(e *Env) ([]byte, error) {
	if e.ReadPassword != nil {
		return e.ReadPassword()
	}
	f, ok := stdin(e).(interface{ Fd() uintptr })
	if !ok {
		return nil, errors.New("stdin is not a file")
	}
	return term.ReadPassword(int(f.Fd()))
}
