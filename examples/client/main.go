// Command client sends one ext_authz Check to keygate the way Envoy does and
// prints the CheckResponse as JSON: a way to try keygate without Envoy.
//
//	go run ./examples/client -key kg_sak_… -method GET -path /email/inbox
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9191", "keygate's authz address")
	key := flag.String("key", "", "API key to send in x-api-key (empty: none)")
	method := flag.String("method", "GET", "HTTP method")
	path := flag.String("path", "/email/inbox", "request path")
	host := flag.String("host", "api.example.com", "Host header")
	peer := flag.String("peer", "127.0.0.1", "client address Envoy would report")
	ctype := flag.String("content-type", "", "content-type header (application/grpc for gRPC)")
	body := flag.String("body", "", "request body, as Envoy forwards it with with_request_body (GraphQL routes)")
	var ext extFlag
	flag.Var(&ext, "ext", "context_extensions entry name=value (repeatable)")
	flag.Parse()

	headers := map[string]string{":method": *method, ":path": *path, ":authority": *host}
	if *key != "" {
		headers["x-api-key"] = *key
	}
	if *ctype != "" {
		headers["content-type"] = *ctype
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: *peer}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: *method, Path: *path, Host: *host, Headers: headers, Body: *body,
		}},
		ContextExtensions: ext,
	}}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(1)
	}
	fmt.Println(protojson.MarshalOptions{Multiline: true}.Format(resp))
}

type extFlag map[string]string

func (e *extFlag) String() string { return fmt.Sprint(map[string]string(*e)) }

func (e *extFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want name=value, got %q", v)
	}
	if *e == nil {
		*e = map[string]string{}
	}
	(*e)[name] = value
	return nil
}
