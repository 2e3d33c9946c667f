package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/metadata"

	"github.com/keygate/keygate/pkg/account/accountv1"
	"github.com/keygate/keygate/pkg/accountcli"
	"github.com/keygate/keygate/pkg/accountgrpc"
	"github.com/keygate/keygate/pkg/apikey"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/store/postgres"
)

// explainCmd shows, step by step, how serve would decide one request: for
// platform teams debugging a 403. It runs the same engine and adapter.
type explainCmd struct {
	RoutesFile  string            `name:"routes-file" env:"KEYGATE_ROUTES_FILE" required:"" type:"path" help:"YAML routes file mapping requests to services; serve reloads it when it changes."`
	KeysFile    string            `name:"keys-file" env:"KEYGATE_KEYS_FILE" type:"path" help:"YAML keys file (hashes only); serve reloads it when it changes."`
	KeyID       string            `name:"key-id" help:"Explain for this key id, fetched with the Account API (KEYGATE_ACCOUNT_ADDR, KEYGATE_ACCOUNT_KEY); rows 1-3 are skipped."`
	Method      string            `name:"method" default:"GET" help:"Request method."`
	Path        string            `name:"path" required:"" help:"Request path as Envoy sees it (with query string)."`
	Host        string            `name:"host" default:"localhost" help:"Request host."`
	ClientIP    string            `name:"client-ip" default:"127.0.0.1" help:"Client address Envoy reports."`
	ContentType string            `name:"content-type" help:"Content-Type (application/grpc for gRPC)."`
	Ext         map[string]string `name:"ext" help:"Envoy context_extensions, e.g. --ext service=email-api --ext kind=query."`
	BodyFile    string            `name:"body-file" type:"path" help:"Request body (GraphQL routes)."`
	requestFlags
	hashFlags
	databaseURLFlags     // find the key (secret on stdin) in PostgreSQL
	accountcli.ConnFlags // with --key-id: the Account API to fetch the key from

	// denials are the service access denials the engine checked (row 9),
	// when the key source holds any.
	denials *authz.DenialIndex
	// quotas are the states of the key's quotas before the request (row
	// 10); quotaNote says when they are not the fleet's.
	quotas    []authz.QuotaState
	quotaNote string
}

// observed captures the decision the adapter made, to explain it.
type observed struct{ d authz.Decision }

func (o *observed) ObserveCheck(_ context.Context, d *authz.Decision, _ time.Duration) { o.d = *d }

func (c *explainCmd) Run(e *env) error {
	l, err := load(c.RoutesFile, c.requestFlags, c.hashFlags, func(w string) { fmt.Fprintln(e.stderr, "warning:", w) })
	if err != nil {
		return err
	}
	if err := c.databaseURLFlags.resolve(); err != nil {
		return err
	}
	if c.AccountKey, err = accountcli.AccountKey(c.AccountKey, c.AccountKeyFile); err != nil {
		return err
	}
	var body []byte
	if c.BodyFile != "" {
		if body, err = os.ReadFile(c.BodyFile); err != nil {
			return err
		}
	}
	if c.KeyID != "" {
		return c.explainByID(e, l, body)
	}
	var store authz.KeyStore
	var denials *authz.DenialIndex
	var dbStore *denialReadingStore
	switch {
	case c.KeysFile != "" && c.DatabaseURL != "":
		return errors.New("give one of --keys-file and --database-url")
	case c.KeysFile != "":
		ks, err := keyfile.Open(c.KeysFile, l.keysOpts, nil)
		if err != nil {
			return err
		}
		store, denials = ks, ks.Denials()
		c.quotaNote = " (with a keys file, serve counts quotas per replica: explain starts from 0)"
	case c.DatabaseURL != "":
		st, pool, err := postgres.Open(e.ctx, c.DatabaseURL, postgres.Options{Compile: l.keysOpts.Compile})
		if err != nil {
			return fmt.Errorf("database: %w", err)
		}
		defer pool.Close()
		denials = authz.NewDenialIndex()
		dbStore = &denialReadingStore{st: st, denials: denials, quotas: authz.NewQuotas()}
		store = dbStore
	default:
		return errors.New("where is the key? give --keys-file or --database-url (secret on stdin), or --key-id")
	}
	secret, err := readSecret(e.stdin)
	if err != nil {
		return err
	}
	obs := &observed{}
	c.denials = denials
	engine := &authz.Engine{Keys: store, Routes: l.router, Hasher: l.hasher, Denials: denials, Quotas: authz.NewQuotas()}
	if dbStore != nil {
		engine.Quotas = dbStore.quotas
	}
	srv := extauthz.NewServer(engine, l.cfg, obs, nil)
	resp, err := srv.Check(e.ctx, c.checkRequest(l.cfg.KeyHeader, secret, body))
	if err != nil {
		return err
	}
	if dbStore != nil && dbStore.err != nil {
		fmt.Fprintf(e.stderr, "warning: reading the key's denials: %v\n", dbStore.err)
		c.denials = nil // row 9: not checked here
	}
	switch {
	case dbStore != nil && dbStore.quotaErr != nil:
		fmt.Fprintf(e.stderr, "warning: reading the key's quota counts: %v\n", dbStore.quotaErr)
		c.quotaNote = " (the counts could not be read: " + dbStore.quotaErr.Error() + ")"
	case dbStore != nil:
		c.quotas = dbStore.quotaStates
	case obs.d.Key != nil:
		// Before the request, as row 10 saw it: with a keys file explain's
		// table starts empty (serve counts per replica).
		c.quotas = authz.NewQuotas().State(obs.d.Key, time.Now())
	}
	c.explain(e.stdout, l, &obs.d, resp, true)
	return nil
}

// checkRequest builds the CheckRequest Envoy would send.
func (c *explainCmd) checkRequest(keyHeader, secret string, body []byte) *authv3.CheckRequest {
	headers := map[string]string{":method": c.Method, ":path": c.Path, ":authority": c.Host}
	if secret != "" {
		headers[keyHeader] = secret
	}
	if c.ContentType != "" {
		headers["content-type"] = c.ContentType
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: c.ClientIP}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: c.Method, Path: c.Path, Host: c.Host, Headers: headers, RawBody: body,
		}},
		ContextExtensions: c.Ext,
	}}
}

// explainByID evaluates rows 4-8 for a key fetched by id: the same record
// methods the engine calls, without a secret.
func (c *explainCmd) explainByID(e *env, l *loaded, body []byte) error {
	if c.AccountKey == "" {
		return errors.New("--key-id needs an account key: set KEYGATE_ACCOUNT_KEY or KEYGATE_ACCOUNT_KEY_FILE")
	}
	conn, err := c.Dial(c.AccountAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(e.ctx, "x-api-key", c.AccountKey), 10*time.Second)
	defer cancel()
	resp, err := accountv1.NewAccountServiceClient(conn).GetKey(ctx, &accountv1.GetKeyRequest{Id: c.KeyID})
	if err != nil {
		return fmt.Errorf("get key %s: %w", c.KeyID, accountcli.CallError(c.AccountAddr, err))
	}
	api := accountv1.NewAccountServiceClient(conn)
	roles, denials, err := remoteRolesAndDenials(ctx, api, c.AccountAddr, resp.GetKey())
	if err != nil {
		return err
	}
	key, err := compileRemoteKey(resp.GetKey(), l, roles)
	if err != nil {
		return err
	}
	c.denials = denials
	ip, _ := netip.ParseAddr(c.ClientIP)
	req := authz.Request{Key: "(by id)", KeyCount: 1, ClientIP: ip, Route: authz.RouteInput{
		Host: c.Host, Method: c.Method, Path: c.Path, ContentType: c.ContentType, Extensions: authz.ExtensionsFrom(c.Ext), Body: body}}
	engine := &authz.Engine{Routes: l.router, Hasher: l.hasher, Denials: denials}
	now := time.Now()
	d := engine.Evaluate(e.ctx, key, &req, now)
	c.quotas = remoteQuotas(&d, resp.GetQuotaStatus(), now)
	c.explain(e.stdout, l, &d, nil, false)
	return nil
}

// compileRemoteKey turns an Account API key into a record (with a dummy
// hash: the record only decides rows 4-8 here).
func compileRemoteKey(k *accountv1.Key, l *loaded, roles authz.RoleMap) (*authz.Key, error) {
	typ, _ := accountgrpc.KeyTypeFromProto(k.GetType())
	spec := authz.KeySpec{
		ID: k.GetId(), Name: k.GetName(), Type: typ, AccountID: remoteAccount, AppID: k.GetAppId(), AppName: k.GetAppName(),
		Roles:    k.GetRoleIds(),
		TenantID: k.GetTenantId(), TenantName: k.GetTenantName(), Scope: k.GetScope(), Active: k.GetActive(),
		IPFilters: k.GetIpFilters(), Group: k.GetGroup(), Description: k.GetDescription(),
		Hash:      apikey.FormatHash(apikey.SHA256, apikey.Digest{}),
		RateLimit: rateLimitFromProto(k.GetRateLimit()),
	}
	spec.Quota = accountgrpc.QuotaFromProto(k.GetQuota())
	if k.GetNotBefore() != nil {
		spec.NotBefore = k.GetNotBefore().AsTime()
	}
	if k.GetExpiresAt() != nil {
		spec.ExpiresAt = k.GetExpiresAt().AsTime()
	}
	for _, h := range k.GetResponseHeaders() {
		spec.ResponseHeaders = append(spec.ResponseHeaders, authz.HeaderSpec{Name: h.GetName(), Value: h.GetValue(), Disabled: h.GetDisabled()})
	}
	// A stored key, compiled as the data plane loads it: response headers
	// that break today's rules are dropped, not a reason to fail.
	opts := l.keysOpts.Compile
	opts.Roles = roles
	key, _, err := authz.CompileStored(spec, opts)
	return key, err
}

func (c *explainCmd) explain(w io.Writer, l *loaded, d *authz.Decision, resp *authv3.CheckResponse, withSecret bool) {
	fmt.Fprintf(w, "request: %s %s host %s client %s", c.Method, c.Path, c.Host, c.ClientIP)
	if len(c.Ext) > 0 {
		fmt.Fprintf(w, " context_extensions %v", c.Ext)
	}
	fmt.Fprintln(w)
	failed := authz.RowOf(d.Reason)
	for i, row := range authz.Rows {
		title := row.Number + " " + row.Check
		if !withSecret && i < 3 {
			fmt.Fprintf(w, "  %-32s skipped (key given by id)\n", title)
			continue
		}
		switch {
		case failed >= 0 && i > failed:
			fmt.Fprintf(w, "  %-32s not reached\n", title)
		case i == failed:
			fmt.Fprintf(w, "  %-32s FAIL %s (%d)%s\n", title, d.Reason, extauthz.DenialFor(d.Reason).HTTPStatus, c.detail(i, d, l))
		default:
			fmt.Fprintf(w, "  %-32s ok%s\n", title, c.detail(i, d, l))
		}
	}
	c.explainRoutes(w, l)
	if d.Reason != authz.OK {
		fmt.Fprintf(w, "decision: DENY %d %s\n", extauthz.DenialFor(d.Reason).HTTPStatus, extauthz.DecisionBody(d, l.cfg.GenericKeyErrors))
		printMetadata(w, resp)
		return
	}
	fmt.Fprintln(w, "decision: ALLOW")
	ok := resp.GetOkResponse()
	if ok == nil {
		return
	}
	for _, h := range ok.GetHeaders() {
		fmt.Fprintf(w, "  upstream header   %s: %s\n", h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	for _, h := range ok.GetHeadersToRemove() {
		fmt.Fprintf(w, "  removed upstream  %s\n", h)
	}
	for _, h := range ok.GetResponseHeadersToAdd() {
		fmt.Fprintf(w, "  response header   %s: %s\n", h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	printMetadata(w, resp)
}

// printMetadata lists the answer's dynamic metadata (an allow's key and
// target, the denial that decided an access_denied).
func printMetadata(w io.Writer, resp *authv3.CheckResponse) {
	fields := resp.GetDynamicMetadata().GetFields()
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := fields[k].GetStringValue()
		if sv := fields[k].GetStructValue(); sv != nil {
			// The rate_limit struct Envoy's limit override reads (SPEC §12).
			v = fmt.Sprintf("{requests_per_unit: %v, unit: %s}",
				sv.GetFields()["requests_per_unit"].GetNumberValue(), sv.GetFields()["unit"].GetStringValue())
		}
		fmt.Fprintf(w, "  dynamic metadata  %s=%s\n", k, v)
	}
}

// rateLimitFromProto is an Account API rate limit as authz holds it (an
// unknown unit reads as none; the server never sends one).
func rateLimitFromProto(p *accountv1.RateLimit) authz.RateLimit {
	units := map[accountv1.RateLimitUnit]authz.RateUnit{
		accountv1.RateLimitUnit_RATE_LIMIT_UNIT_SECOND: authz.RateUnitSecond,
		accountv1.RateLimitUnit_RATE_LIMIT_UNIT_MINUTE: authz.RateUnitMinute,
		accountv1.RateLimitUnit_RATE_LIMIT_UNIT_HOUR:   authz.RateUnitHour,
		accountv1.RateLimitUnit_RATE_LIMIT_UNIT_DAY:    authz.RateUnitDay,
	}
	u, ok := units[p.GetUnit()]
	if p == nil || !ok {
		return authz.RateLimit{}
	}
	return authz.RateLimit{RequestsPerUnit: p.GetRequestsPerUnit(), Unit: u}
}

// explainRoutes shows both resolutions of the request by the route table
// (SPEC §9: the host routes and the host-less ones must agree).
func (c *explainCmd) explainRoutes(w io.Writer, l *loaded) {
	in := authz.RouteInput{Host: c.Host, Method: c.Method, Path: c.Path, ContentType: c.ContentType,
		Extensions: authz.ExtensionsFrom(c.Ext)}
	res := l.router.Current().Explain(&in)
	fmt.Fprintln(w, "routes:")
	if res.ByHost != "" || res.Hostless != "" {
		fmt.Fprintf(w, "  by host %-10s %s\n", c.Host, orNone(res.ByHost))
		fmt.Fprintf(w, "  host-less          %s\n", orNone(res.Hostless))
	}
	fmt.Fprintf(w, "  %s\n", res.Note)
}

func orNone(s string) string {
	if s == "" {
		return "no route matches"
	}
	return s
}

// detail is what a step found, when there is something to say.
func (c *explainCmd) detail(step int, d *authz.Decision, l *loaded) string {
	k := d.Key
	t := &d.Target
	switch step {
	case 2:
		if k != nil {
			s := fmt.Sprintf(": key %s %q (%s", k.Spec.ID, k.Spec.Name, k.Spec.Type)
			if k.Spec.AppID != "" {
				s += ", app " + k.Spec.AppID
			}
			if k.Spec.TenantID != "" {
				s += ", tenant " + k.Spec.TenantID
			}
			return s + ")"
		}
	case 3:
		if k != nil {
			var parts []string
			parts = append(parts, fmt.Sprintf("active %v", k.Spec.Active))
			if !k.Spec.NotBefore().IsZero() {
				parts = append(parts, "not before "+k.Spec.NotBefore().Format(time.RFC3339))
			}
			parts = append(parts, "expires "+orNever(k.ExpiresAtText()))
			return ": " + strings.Join(parts, ", ")
		}
	case 4:
		if t.Service != "" {
			s := fmt.Sprintf(": service %s, kind %q, operation %q", t.Service, t.Kind, t.Operation)
			for _, op := range t.More {
				s += fmt.Sprintf(" + %s:%s", op.Kind, op.Name)
			}
			if t.Detail != "" {
				s += " — " + t.Detail
			}
			return s
		}
		if t.Detail != "" {
			return ": " + t.Detail
		}
	case 5:
		if k != nil && t.Service != "" {
			var accepts []string
			for _, kt := range []authz.KeyType{authz.KeyTypeService, authz.KeyTypeApp, authz.KeyTypeAccount} {
				if t.Accepts.Has(kt) {
					accepts = append(accepts, kt.String())
				}
			}
			return fmt.Sprintf(": %s accepts %s; the key is %s", t.Service, strings.Join(accepts, ", "), k.Spec.Type)
		}
	case 6:
		if k != nil && t.Service != "" {
			if t.Accounts == nil {
				return fmt.Sprintf(": %s serves every account", t.Service)
			}
			return fmt.Sprintf(": %s serves accounts %s; the key's is %q", t.Service, strings.Join(t.Accounts, ", "), k.Spec.AccountID)
		}
	case 7:
		if k != nil {
			// The compiled filters: a stored key's text form is trimmed
			// once compiled, and these are what the key is checked against.
			prefixes := k.IPFilter().Prefixes()
			if len(prefixes) == 0 {
				return ": the key has no IP filters"
			}
			filters := make([]string, len(prefixes))
			for i, p := range prefixes {
				filters[i] = p.String()
			}
			return fmt.Sprintf(": client %s, filters %s", c.ClientIP, strings.Join(filters, " "))
		}
	case 8:
		if k != nil && t.Service != "" {
			if len(k.Roles()) > 0 {
				return scopeWithRoles(k, d.Denied)
			}
			s := ": scope " + quotedScope(k.Spec.Scope)
			if d.Denied != "" {
				s += " refuses " + d.Denied
			}
			return s
		}
	case 9:
		return c.denialDetail(d)
	case 10:
		if s := quotaStates(c.quotas); s != "" {
			return s + c.quotaNote
		}
		if k != nil && !k.HasQuota() {
			return ": no quota"
		}
		return c.quotaNote
	}
	return ""
}

// scopeWithRoles shows a key's own scope, each role's and the effective
// scope it is checked against (SPEC §11).
func scopeWithRoles(k *authz.Key, denied string) string {
	s := ": effective scope " + quotedScope(k.Scope().String())
	if denied != "" {
		s += " refuses " + denied
	}
	own := quotedScope(k.Spec.Scope)
	if strings.TrimSpace(k.Spec.Scope) == "" {
		own = `"" (adds nothing: its roles decide)`
	}
	s += "\n      own scope " + own
	for _, r := range k.Roles() {
		s += fmt.Sprintf("\n      role %s (%s) %s", r.ID, r.Name, strconv.Quote(r.Scope))
	}
	return s
}

// denialDetail is what row 9 found: the denial that decided, or how many
// denials of the key's tenant and app were checked.
func (c *explainCmd) denialDetail(d *authz.Decision) string {
	k := d.Key
	if d.Denial != nil {
		dn := d.Denial
		return fmt.Sprintf(": denial %s (tenant %s, app %s, scope %s) covers %s:%s:%s — reason %s",
			dn.ID, dn.TenantID, dn.AppID, strconv.Quote(dn.Scope), d.Target.Service, orUnknown(d.Target.Kind),
			orUnknown(d.Target.Operation), strconv.Quote(dn.Reason))
	}
	if k == nil || d.Target.Service == "" {
		return ""
	}
	if k.Spec.TenantID == "" {
		return ": app keys are never denied by a denial"
	}
	if c.denials == nil {
		return ": not checked here (this key source holds no denials)"
	}
	n := len(c.denials.For(k.Spec.AccountID, k.Spec.TenantID, k.Spec.AppID))
	return fmt.Sprintf(": %d denials of tenant %s, app %s; none covers it", n, k.Spec.TenantID, k.Spec.AppID)
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// quotedScope quotes a scope, but shows an empty one (which allows every
// operation) in the CLI tables' words rather than as "".
func quotedScope(scope string) string {
	if strings.TrimSpace(scope) == "" {
		return accountcli.AllScope
	}
	return strconv.Quote(scope)
}

func orNever(s string) string {
	if s == "" {
		return "never"
	}
	return s
}
