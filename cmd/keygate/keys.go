package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/keygate/keygate/pkg/accountcli"
	"github.com/keygate/keygate/pkg/apikey"
)

type keygenCmd struct {
	Type string `name:"type" required:"" enum:"service,app,account" help:"Key type: service, app or account."`
	hashFlags
}

var kindOfType = map[string]apikey.Kind{
	"service": apikey.KindService,
	"app":     apikey.KindApp,
	"account": apikey.KindAccount,
}

// Run prints the secret on line 1 and its hash form on line 2, nothing else,
// so scripts can read both with two `read`s.
func (c *keygenCmd) Run(e *env) error {
	h, err := c.hasher()
	if err != nil {
		return err
	}
	secret, err := apikey.Generate(kindOfType[c.Type])
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n%s\n", secret, h.HashString(secret))
	return err
}

type hashCmd struct {
	hashFlags
}

// Run reads one secret (one line) from stdin, prompting without echo on a
// terminal, and prints its hash form.
func (c *hashCmd) Run(e *env) error {
	h, err := c.hasher()
	if err != nil {
		return err
	}
	in, err := accountcli.SecretInput(e.acct)
	if err != nil {
		return err
	}
	secret, err := readSecret(in)
	if err != nil {
		return err
	}
	if err := apikey.Validate(secret); err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	_, err = fmt.Fprintln(e.stdout, h.HashString(secret))
	return err
}

// readSecret reads the first line of r without its line ending. Nothing
// else is trimmed: keygate never trims keys, so neither does hashing.
func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading stdin: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("stdin: no secret given (pipe one secret on one line)")
	}
	return line, nil
}
