package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// httpLimits bound every HTTP listener serve runs (the HTTP authz mode, the
// console listener and the admin listener): a client, with or without a key, can hold neither a
// connection nor memory beyond them (SPEC §16).
type httpLimits struct {
	HTTPReadHeaderTimeout   time.Duration `name:"http-read-header-timeout" env:"KEYGATE_HTTP_READ_HEADER_TIMEOUT" default:"5s" help:"HTTP listeners (authz, console and admin): how long a client may take to send a request's headers; also how long a new connection may stay silent."`
	HTTPReadTimeout         time.Duration `name:"http-read-timeout" env:"KEYGATE_HTTP_READ_TIMEOUT" default:"10s" help:"HTTP listeners: how long a client may take to send a whole request, body included."`
	HTTPWriteTimeout        time.Duration `name:"http-write-timeout" env:"KEYGATE_HTTP_WRITE_TIMEOUT" default:"10s" help:"HTTP listeners: how long answering a request may take (a pprof profile or trace gets its duration on top)."`
	HTTPIdleTimeout         time.Duration `name:"http-idle-timeout" env:"KEYGATE_HTTP_IDLE_TIMEOUT" default:"60s" help:"HTTP listeners: how long a keep-alive connection may wait for its next request."`
	HTTPMaxHeaderBytes      int           `name:"http-max-header-bytes" env:"KEYGATE_HTTP_MAX_HEADER_BYTES" default:"65536" help:"HTTP listeners: the largest request line and headers accepted (431 beyond)."`
	HTTPAuthzMaxConnections int           `name:"http-authz-max-connections" env:"KEYGATE_HTTP_AUTHZ_MAX_CONNECTIONS" default:"4096" help:"Connections the HTTP authz listener serves at once; further ones wait to be accepted."`
	AdminMaxConnections     int           `name:"admin-max-connections" env:"KEYGATE_ADMIN_MAX_CONNECTIONS" default:"64" help:"Connections the admin listener serves at once; further ones wait to be accepted."`
}

// validate reports every limit that is not positive: none of them can be
// switched off.
func (l httpLimits) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"http-read-header-timeout", l.HTTPReadHeaderTimeout}, {"http-read-timeout", l.HTTPReadTimeout},
		{"http-write-timeout", l.HTTPWriteTimeout}, {"http-idle-timeout", l.HTTPIdleTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %s must be positive", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"http-max-header-bytes", l.HTTPMaxHeaderBytes}, {"http-authz-max-connections", l.HTTPAuthzMaxConnections},
		{"admin-max-connections", l.AdminMaxConnections},
	} {
		if n.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %d must be positive", n.name, n.v))
		}
	}
	return errors.Join(errs...)
}

// server is an HTTP server for h with the limits' timeouts and header
// size.
func (l httpLimits) server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.HTTPReadHeaderTimeout,
		ReadTimeout:       l.HTTPReadTimeout,
		WriteTimeout:      l.HTTPWriteTimeout,
		IdleTimeout:       l.HTTPIdleTimeout,
		MaxHeaderBytes:    l.HTTPMaxHeaderBytes,
	}
}

// listenLimited listens on addr and serves at most n connections at once:
// Accept waits while n are open, so further clients queue in the kernel's
// backlog instead of costing keygate a goroutine and buffers each.
func listenLimited(addr string, n int) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return netutil.LimitListener(lis, n), nil
}
