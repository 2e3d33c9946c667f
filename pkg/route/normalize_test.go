package route

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"root", "/", "/"},
		{"already normal", "/email/read", "/email/read"},
		{"trailing slash kept", "/email/read/", "/email/read/"},
		{"duplicate slashes merged", "//email///read//", "/email/read/"},
		{"only slashes", "///", "/"},
		{"dot segment", "/a/./b", "/a/b"},
		{"trailing dot segment", "/a/b/.", "/a/b/"},
		{"dot-dot segment", "/a/b/../c", "/a/c"},
		{"trailing dot-dot segment", "/a/b/..", "/a/"},
		{"dot-dot of one segment", "/a/..", "/"},
		{"dot-dot above root", "/../a", "/a"},
		{"dot-dot above root twice", "/../../a/../../b", "/b"},
		{"only dot-dot", "/..", "/"},
		{"only dot", "/.", "/"},
		{"traversal out of a read route", "/email/read/../send", "/email/send"},
		{"slashes merged before dot-dot", "/a//../b", "/b"},
		{"dot names are not dot segments", "/a/.b/..c/.../d.", "/a/.b/..c/.../d."},
		{"unreserved escape decoded", "/%41%7a%30%2D%2E%5F%7E", "/Az0-._~"},
		{"encoded dot-dot resolved", "/a/b/%2e%2E/c", "/a/c"},
		{"half-encoded dot-dot resolved", "/a/b/.%2e", "/a/"},
		{"reserved escape kept", "/a%2Fb", "/a%2Fb"},
		{"reserved escape upper-cased", "/a%2fb%3a", "/a%2Fb%3A"},
		{"escaped percent not decoded twice", "/%252E%252E", "/%252E%252E"},
		{"encoded slash does not split for dot-dot", "/a/b%2F../c", "/a/b%2F../c"},
		{"non-ASCII escape kept", "/caf%c3%a9", "/caf%C3%A9"},
		{"raw bytes left alone", "/a b/\xff", "/a b/\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizePath(tt.in)
			if err != nil {
				t.Fatalf("NormalizePath(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("NormalizePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
			again, err := NormalizePath(got)
			if err != nil || again != got {
				t.Errorf("NormalizePath(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestNormalizePathErrors(t *testing.T) {
	tests := []struct{ name, in, msg string }{
		{"empty", "", "empty"},
		{"relative", "a/b", `does not start with "/"`},
		{"asterisk", "*", `does not start with "/"`},
		{"bad hex", "/a%zz", `malformed percent-escape "%zz" at byte 2`},
		{"one bad hex digit", "/a%4g", `"%4g"`},
		{"truncated escape", "/a%4", `"%4" at byte 2`},
		{"lone percent", "/a%", `"%" at byte 2`},
		{"bad escape after a good one", "/%41/%x", `"%x" at byte 5`},
		{"bad escape in a normal-looking path", "/a/b%2", `"%2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizePath(tt.in)
			if err == nil {
				t.Fatalf("NormalizePath(%q) = %q, want an error", tt.in, got)
			}
			if !errors.Is(err, ErrInvalidPath) {
				t.Errorf("error %v does not wrap ErrInvalidPath", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestNormalizePathAllocs(t *testing.T) {
	for _, p := range []string{"/", "/email/read/42", "/a%2Fb/c%C3%A9/", "/users.v1.UserService/GetUser"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = NormalizePath(p) }); n != 0 {
			t.Errorf("NormalizePath(%q) allocates %v times, want 0", p, n)
		}
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		"/", "", "a", "/email/read/../send", "//a//b/", "/a/./b/.", "/a/b/..", "/%2e%2E/x",
		"/%41%zz", "/a%2Fb", "/a%2f", "/%", "/%4", "/..", "/.%2e/", "/a/%252e", "/\xff/..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		// The fast path must agree with the slow one.
		if p != "" && p[0] == '/' && isNormal(p) {
			if slow, e, _ := rewrite(p); e != pathOK || slow != p {
				t.Fatalf("isNormal(%q) but rewrite gives %q, %v", p, slow, e)
			}
		}
		got, err := NormalizePath(p)
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("error %v does not wrap ErrInvalidPath", err)
			}
			return
		}
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("NormalizePath(%q) = %q: does not start with /", p, got)
		}
		if strings.Contains(got, "//") {
			t.Fatalf("NormalizePath(%q) = %q: has //", p, got)
		}
		for _, seg := range strings.Split(got, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q: has a dot segment", p, got)
			}
		}
		again, err := NormalizePath(got)
		if err != nil || again != got {
			t.Fatalf("NormalizePath(%q) = %q, but normalising it again gives %q, %v", p, got, again, err)
		}
	})
}

func BenchmarkNormalizePath(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"normal", "/email/read/42/attachments/a.pdf"},
		{"dot-segments", "/email/read/../send//x"},
		{"escapes", "/email/%72ead/a%2fb"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = NormalizePath(bc.path)
			}
		})
	}
}
