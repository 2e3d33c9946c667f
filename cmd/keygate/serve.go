package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/keygate/keygate/pkg/admin"
	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/extauthz"
	"github.com/keygate/keygate/pkg/filewatch"
	"github.com/keygate/keygate/pkg/keyfile"
	"github.com/keygate/keygate/pkg/metrics"
	"github.com/keygate/keygate/pkg/route"
)

type serveCmd struct {
	fileFlags
	requestFlags
	hashFlags
	logFlags
	AuthzAddr       string        `name:"authz-addr" env:"KEYGATE_AUTHZ_ADDR" default:"127.0.0.1:9191" help:"gRPC listener for ext_authz Check and grpc.health.v1."`
	AdminAddr       string        `name:"admin-addr" env:"KEYGATE_ADMIN_ADDR" default:"127.0.0.1:9193" help:"HTTP listener for /healthz, /readyz and /metrics."`
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"KEYGATE_SHUTDOWN_TIMEOUT" default:"10s" help:"How long in-flight checks may take to finish on shutdown."`
}

func authzCompileOptions(cfg extauthz.Config) authz.CompileOptions {
	return authz.CompileOptions{ReservedHeaders: cfg.ReservedHeaders()}
}

// Run serves until the context is cancelled (SIGINT/SIGTERM), then stops
// taking new checks, finishes the ones in flight and returns.
func (c *serveCmd) Run(e *env) error {
	log := c.logger(e.stderr)
	warn := func(w string) { log.Warn("configuration warning", "warning", w) }
	l, err := load(c.fileFlags, c.requestFlags, c.hashFlags, warn)
	if err != nil {
		return err
	}
	keys, err := keyfile.Open(c.KeysFile, l.keysOpts, log)
	if err != nil {
		return err
	}

	m := metrics.New(version, func() float64 { return float64(keys.Len()) })
	engine := &authz.Engine{Keys: keys, Routes: l.router, Hasher: l.hasher}
	authzSrv := extauthz.NewServer(engine, l.cfg, m, log)

	authzLis, err := net.Listen("tcp", c.AuthzAddr)
	if err != nil {
		return fmt.Errorf("authz-addr: %w", err)
	}
	adminLis, err := net.Listen("tcp", c.AdminAddr)
	if err != nil {
		authzLis.Close()
		return fmt.Errorf("admin-addr: %w", err)
	}

	grpcSrv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(grpcSrv, authzSrv)
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(grpcSrv, healthSrv)
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthSrv.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	ready := func() (bool, string) { return true, "" }
	adminSrv := &http.Server{Handler: admin.Handler(ready, m.Registry), ReadHeaderTimeout: 5 * time.Second}

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(4)
	go func() { defer wg.Done(); errc <- grpcSrv.Serve(authzLis) }()
	go func() {
		defer wg.Done()
		if err := adminSrv.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	go func() {
		defer wg.Done()
		c.watch(ctx, log, c.KeysFile, func() {
			err := keys.Reload()
			m.ObserveReload("keys", err)
		})
	}()
	go func() {
		defer wg.Done()
		c.watch(ctx, log, c.RoutesFile, func() {
			err := reloadRoutes(l.router, c.RoutesFile, log)
			m.ObserveReload("routes", err)
		})
	}()
	log.Info("listening", "listener", "authz", "addr", authzLis.Addr().String())
	log.Info("listening", "listener", "admin", "addr", adminLis.Addr().String())
	log.Info("keygate serving", "version", version, "keys", keys.Len(), "hash", string(l.hasher.Algorithm()))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("shutting down", "timeout", c.ShutdownTimeout.String())
	// Envoy's health checks see NOT_SERVING first, then in-flight checks finish.
	healthSrv.Shutdown()
	stopped := make(chan struct{})
	go func() { grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(c.ShutdownTimeout):
		log.Warn("shutdown timeout: cancelling remaining checks")
		grpcSrv.Stop()
	}
	shutCtx, shutCancel := context.WithTimeout(context.Background(), time.Second)
	_ = adminSrv.Shutdown(shutCtx)
	shutCancel()
	cancel()
	wg.Wait()
	return serveErr
}

// watch calls reload whenever path changes, until ctx is done.
func (c *serveCmd) watch(ctx context.Context, log *slog.Logger, path string, reload func()) {
	w, err := filewatch.New(path)
	if err != nil {
		log.Warn("cannot watch file; it will not be reloaded", "file", path, "error", err)
		return
	}
	defer w.Close()
	w.Run(ctx, reload)
}

// reloadRoutes swaps in a changed routes file, keeping the last good table
// when the new one is invalid.
func reloadRoutes(r *route.Router, path string, log *slog.Logger) error {
	table, warnings, err := route.LoadFile(path)
	if err != nil {
		log.Warn("routes file reload failed; keeping the last good routes", "file", path, "error", err)
		return err
	}
	for _, w := range warnings {
		log.Warn("configuration warning", "warning", w)
	}
	r.Swap(table)
	log.Info("routes file reloaded", "file", path, "services", len(table.ServiceNames()))
	return nil
}
