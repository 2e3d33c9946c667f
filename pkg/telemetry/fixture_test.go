package telemetry_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/cache"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/store"
)

var (
	hasher   = apikey.NewHasher(nil)
	services = authz.KeyTypes(0).With(authz.KeyTypeService)
	routes   = pathRouter{
		"/email/read": {Service: "email-api", Kind: "query", Operation: "listEmails", Accepts: services},
		"/email/send": {Service: "email-api", Kind: "mutation", Operation: "sendEmail", Accepts: services},
	}
)

// pathRouter routes by exact path.
type pathRouter map[string]authz.Target

func (r pathRouter) Resolve(in *authz.RouteInput) (authz.Target, authz.Reason) {
	p, _, _ := strings.Cut(in.Path, "?")
	if t, ok := r[p]; ok {
		return t, authz.OK
	}
	return authz.Target{}, authz.UnknownRoute
}

// source is a store.Source in memory. Its change feed is fed by tests
// through addChange and notify.
type source struct {
	mu      sync.Mutex
	keys    map[string]*authz.Key // by id
	changes []store.Change
	notify  chan struct{}
}

func newSource() *source {
	return &source{keys: map[string]*authz.Key{}, notify: make(chan struct{}, 16)}
}

func (s *source) LookupKey(_ context.Context, d apikey.Digest) (*authz.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.Digest == d {
			return k, nil
		}
	}
	return nil, authz.ErrKeyNotFound
}

func (s *source) LookupKeyByID(_ context.Context, _, id string) (*authz.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		return k, nil
	}
	return nil, authz.ErrKeyNotFound
}

// LookupKeysByID: the fixture's keys are of one account.
func (s *source) LookupKeysByID(_ context.Context, refs []store.KeyRef) ([]*authz.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*authz.Key
	for _, r := range refs {
		if k, ok := s.keys[r.ID]; ok {
			out = append(out, k)
		}
	}
	return out, nil
}

// LookupKeysOfParent: the fixture logs no app or tenant changes.
func (s *source) LookupKeysOfParent(context.Context, string, store.ChangeKind, string) ([]*authz.Key, error) {
	return nil, nil
}

func (s *source) FeedHead(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.changes)), nil
}

func (s *source) LoadAll(_ context.Context, fn func(*authz.Key) error) (int64, error) {
	s.mu.Lock()
	keys := make([]*authz.Key, 0, len(s.keys))
	for _, k := range s.keys {
		keys = append(keys, k)
	}
	seq := int64(len(s.changes))
	s.mu.Unlock()
	for _, k := range keys {
		if err := fn(k); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

// RevocationsSince: the fixture's feed is short; nothing is read ahead.
func (s *source) RevocationsSince(context.Context, int64, int) ([]store.Change, error) {
	return nil, nil
}

func (s *source) ChangesSince(_ context.Context, seq int64, limit int) ([]store.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Change
	for _, c := range s.changes {
		if c.Seq > seq && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *source) Listen(ctx context.Context, notify func(), onState func(bool)) error {
	onState(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.notify:
			notify()
		}
	}
}

// put stores a key (and, once warm, logs the change; notify announces it).
func (s *source) put(k *authz.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[k.Spec.ID] = k
	s.changes = append(s.changes, store.Change{Seq: int64(len(s.changes) + 1), Kind: store.ChangeKey, AccountID: k.Spec.AccountID, ID: k.Spec.ID})
}

// fixture is an extauthz.Server on a warm cache over source, with a
// service key (secret) and a scoped key that may not send mail.
type fixture struct {
	src            *source
	cache          *cache.Cache
	engine         *authz.Engine
	cfg            extauthz.Config
	secret, scoped string
}

func newKey(t testing.TB, cfg extauthz.Config, id, scope string) (*authz.Key, string) {
	t.Helper()
	secret, err := apikey.Generate(apikey.KindService)
	if err != nil {
		t.Fatal(err)
	}
	k, err := authz.Compile(authz.KeySpec{ID: id, Name: id + "-name", Type: authz.KeyTypeService, AccountID: "default",
		AppID: "billing", AppName: "Billing", TenantID: "acme", TenantName: "ACME Corp", Active: true,
		Hash: hasher.HashString(secret), Scope: scope},
		authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()})
	if err != nil {
		t.Fatal(err)
	}
	return k, secret
}

func newFixture(t testing.TB, src store.Source) *fixture {
	t.Helper()
	f := &fixture{cfg: extauthz.Config{}.WithDefaults()}
	s, ok := src.(*source)
	if !ok {
		s = newSource()
		src = s
	}
	f.src = s
	k, secret := newKey(t, f.cfg, "k-svc", "")
	s.put(k)
	f.secret = secret
	k, secret = newKey(t, f.cfg, "k-scoped", "email-api !email-api:mutation:sendEmail")
	s.put(k)
	f.scoped = secret
	c, err := cache.New(src, cache.Options{PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	t.Cleanup(c.Close)
	f.cache = c
	f.engine = &authz.Engine{Keys: c, Routes: routes, Hasher: hasher}
	return f
}

// request builds a CheckRequest the way Envoy sends one.
func request(path, key string, extra map[string]string) *authv3.CheckRequest {
	headers := map[string]string{":path": path, ":method": "GET", "content-type": "application/json"}
	if key != "" {
		headers["x-api-key"] = key
	}
	for k, v := range extra {
		headers[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Host: "api.example.com", Path: path, Headers: headers,
		}},
	}}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
