package secretfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/pkg/secretfile"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
		err                 bool
	}{
		{"no newline", "s3cret", "s3cret", false},
		{"one newline dropped", "s3cret\n", "s3cret", false},
		{"CRLF dropped", "s3cret\r\n", "s3cret", false},
		{"only one newline dropped", "s3cret\n\n", "s3cret\n", false},
		{"spaces kept", " s3cret \n", " s3cret ", false},
		{"empty", "", "", true},
		{"only a newline", "\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := secretfile.Read(path)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("got %q, %v; want %q (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
	if _, err := secretfile.Read(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file gave no error")
	}
}

func TestSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(path, []byte("postgres://u:filepass@h/db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := secretfile.Source{Direct: "--database-url", File: "--database-url-file"}
	if v, err := src.Get(); v != "" || err != nil {
		t.Fatalf("neither: %q, %v", v, err)
	}
	direct := src
	direct.Value = "postgres://u:flagpass@h/db"
	if v, err := direct.Get(); v != direct.Value || err != nil {
		t.Fatalf("direct: %q, %v", v, err)
	}
	file := src
	file.Path = path
	if v, err := file.Get(); v != "postgres://u:filepass@h/db" || err != nil {
		t.Fatalf("file: %q, %v", v, err)
	}
	both := direct
	both.Path = path
	_, err := both.Get()
	if !errors.Is(err, secretfile.ErrBoth) || !strings.Contains(err.Error(), "--database-url and --database-url-file") {
		t.Fatalf("both: %v", err)
	}
	if strings.Contains(err.Error(), "pass") {
		t.Fatalf("the error holds the secret: %v", err)
	}
	empty := src
	empty.Path = filepath.Join(t.TempDir(), "none")
	if _, err := empty.Get(); err == nil || !strings.HasPrefix(err.Error(), "--database-url-file: ") {
		t.Fatalf("missing file: %v", err)
	}
}
