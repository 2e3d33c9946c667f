// Package secretfile reads secrets that are given as files — a mounted
// Kubernetes Secret, a Docker secret — rather than as flags, which show in
// process lists, shell history and /proc/<pid>/cmdline (SPEC §16).
//
// Errors name the flags and the file's path, never the secret.
package secretfile

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Read returns the contents of the file at path without one trailing
// newline ("\n" or "\r\n"), as `echo` and editors leave it; anything else,
// spaces included, is part of the secret. An empty secret is an error.
func Read(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// Source is a secret that may be given directly (a flag or its environment
// variables) or as a file, but not both.
type Source struct {
	// Direct and File name the two forms in errors, e.g.
	// "--database-url (KEYGATE_DATABASE_URL, DATABASE_URL)".
	Direct, File string
	// Value is the direct form's value; Path the file form's.
	Value, Path string
}

// ErrBoth is returned, wrapped, when a secret is given both ways.
var ErrBoth = errors.New("given both directly and as a file")

// Get returns the secret: Value, or the contents of Path; "" when neither
// is given.
func (s Source) Get() (string, error) {
	switch {
	case s.Value != "" && s.Path != "":
		return "", fmt.Errorf("%s and %s: %w; give one", s.Direct, s.File, ErrBoth)
	case s.Path != "":
		v, err := Read(s.Path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.File, err)
		}
		return v, nil
	}
	return s.Value, nil
}
