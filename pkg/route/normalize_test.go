package route

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
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
		{"reserved escape kept", "/a%3Ab", "/a%3Ab"},
		{"reserved escape upper-cased", "/a%3ab%40", "/a%3Ab%40"},
		{"non-ASCII escape kept", "/caf%c3%a9", "/caf%C3%A9"},
		{"several non-ASCII escapes kept", "/%E2%82%AC%c3%a9x", "/%E2%82%AC%C3%A9x"},
		{"escaped replacement character is valid UTF-8", "/%EF%BF%BD", "/%EF%BF%BD"},
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
		// SPEC §9: what an upstream could split otherwise than keygate.
		{"encoded slash", "/files/..%2Fadmin/purge", `encoded slash "%2F" at byte 9`},
		{"encoded slash in lower case", "/a%2fb", `encoded slash "%2f"`},
		{"encoded backslash", "/files/..%5Cadmin", `encoded backslash "%5C"`},
		{"encoded backslash in lower case", "/files/..%5cadmin", `encoded backslash`},
		{"raw backslash", "/files/..\\admin/purge", `backslash at byte 9`},
		{"encoded percent", "/files/%252e%252e/admin", `encoded percent "%25"`},
		{"overlong dot", "/files/%c0%ae%c0%ae/admin", `invalid UTF-8`},
		{"lone continuation byte", "/a%80", `invalid UTF-8`},
		{"truncated UTF-8 sequence", "/caf%c3", `invalid UTF-8`},
		{"truncated UTF-8 sequence before ASCII", "/caf%c3x", `invalid UTF-8`},
		{"encoded surrogate", "/%ED%A0%80", `invalid UTF-8`},
		{"bad escape inside a UTF-8 run", "/%c3%zz", `malformed percent-escape`},
		{"raw space", "/a b", `byte 0x20 at byte 2`},
		{"raw high byte", "/a/\xff", `byte 0xff`},
		{"raw control byte", "/a\x00", `byte 0x0`},
		{"raw DEL", "/a\x7f", `byte 0x7f`},
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

// TestNormalizePathAllowingSlashes: with allow_encoded_slashes, %2F stays
// one segment; every other refusal holds.
func TestNormalizePathAllowingSlashes(t *testing.T) {
	for in, want := range map[string]string{
		"/a%2fb":       "/a%2Fb",
		"/a/b%2F../c":  "/a/b%2F../c",
		"/a/%2F/./x//": "/a/%2F/x/",
	} {
		got, err := NormalizePathAllowingSlashes(in)
		if err != nil || got != want {
			t.Errorf("NormalizePathAllowingSlashes(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"/a%5Cb", "/a\\b", "/a%252F", "/%c0%af"} {
		if got, err := NormalizePathAllowingSlashes(in); err == nil {
			t.Errorf("NormalizePathAllowingSlashes(%q) = %q, want an error", in, got)
		}
	}
}

func TestNormalizePathAllocs(t *testing.T) {
	for _, p := range []string{"/", "/email/read/42", "/a%3Ab/c%C3%A9/", "/users.v1.UserService/GetUser"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = NormalizePath(p) }); n != 0 {
			t.Errorf("NormalizePath(%q) allocates %v times, want 0", p, n)
		}
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		"/", "", "a", "/email/read/../send", "//a//b/", "/a/./b/.", "/a/b/..", "/%2e%2E/x",
		"/%41%zz", "/a%2Fb", "/a%2f", "/%", "/%4", "/..", "/.%2e/", "/a/%252e", "/\xff/..",
		"/files/..%5Cadmin", "/%c0%ae", "/caf%C3%A9", "/a\\b", "/%E2%82%AC",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		// The fast path must agree with the slow one.
		if p != "" && p[0] == '/' && isNormal(p) {
			if slow, e, _ := rewrite(p, true); e != pathOK || slow != p {
				t.Fatalf("isNormal(%q) but rewrite allowing slashes gives %q, %v", p, slow, e)
			}
			if slow, e, _ := rewrite(p, false); e != pathOK || slow != p {
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
		// An accepted path holds nothing an upstream could split
		// otherwise: no backslash or byte outside printable ASCII, and
		// every escape left is of a reserved ASCII character other than
		// / \ %, or part of valid UTF-8.
		for i := 0; i < len(got); i++ {
			if c := got[i]; c <= ' ' || c >= 0x7f || c == '\\' {
				t.Fatalf("NormalizePath(%q) = %q: byte %#x left", p, got, c)
			}
		}
		for _, bad := range []string{"%2F", "%5C", "%25"} {
			if strings.Contains(got, bad) {
				t.Fatalf("NormalizePath(%q) = %q: %s left", p, got, bad)
			}
		}
		if dec, err := url.PathUnescape(got); err != nil || !utf8.ValidString(dec) {
			t.Fatalf("NormalizePath(%q) = %q: decodes to invalid UTF-8 (%v)", p, got, err)
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
