// Command floor is the performance floor for keygate: the smallest possible
// Envoy ext_authz Authorization/Check server. It answers every request OK at
// once with one shared response, without looking at the request. It is
// built from this module, so it uses the same grpc-go and go-control-plane
// versions as keygate, and a grpc.Server with the same (default) options:
// what it costs per request is what gRPC, HTTP/2 and protobuf cost, and
// keygate's cost above it is keygate's own.
//
// With --response-file it answers with that CheckResponse (protojson)
// instead: bench/load gives it keygate's own allow response, to tell the
// cost of keygate's decision from the cost of its larger answer (to encode,
// and for the client to decode).
//
// With --stats-addr it also serves GET /stats: the Go runtime's allocation
// counters as JSON, read by bench/load to report allocations per request.
// That listener is apart from the gRPC one and never on the Check path.
//
//	go run ./bench/floor --addr 127.0.0.1:9291
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/metrics"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/keygate/keygate/pkg/tlsfiles"
)

// okResponse is built once; gRPC only reads it when marshalling.
var okResponse = &authv3.CheckResponse{
	Status:       &rpcstatus.Status{},
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
}

type floor struct {
	authv3.UnimplementedAuthorizationServer
	resp *authv3.CheckResponse
}

func (f *floor) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return f.resp, nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:9291", "gRPC listen address")
	statsAddr := flag.String("stats-addr", "", "HTTP listen address of GET /stats (allocation counters); off when empty")
	respFile := flag.String("response-file", "", "answer with this CheckResponse (protojson) instead of the minimal OK")
	// TLS as keygate serves it (pkg/tlsfiles), so that a TLS floor costs
	// what keygate's TLS costs.
	var tf tlsfiles.Files
	flag.StringVar(&tf.Cert, "tls-cert-file", "", "serve TLS with this PEM certificate (with -tls-key-file)")
	flag.StringVar(&tf.Key, "tls-key-file", "", "PEM private key of -tls-cert-file")
	flag.StringVar(&tf.ClientCA, "tls-client-ca-file", "", "require client certificates of these CAs (mTLS)")
	flag.Parse()
	f := &floor{resp: okResponse}
	if *respFile != "" {
		b, err := os.ReadFile(*respFile)
		if err != nil {
			return err
		}
		f.resp = new(authv3.CheckResponse)
		if err := protojson.Unmarshal(b, f.resp); err != nil {
			return fmt.Errorf("response-file: %w", err)
		}
	}
	if *statsAddr != "" {
		slis, err := net.Listen("tcp", *statsAddr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /stats", serveStats)
		go func() { _ = (&http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}).Serve(slis) }()
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	var opts []grpc.ServerOption
	if tf.Enabled() {
		src, err := tlsfiles.Load(tf, tlsfiles.Options{Name: "floor", NextProtos: []string{"h2"}})
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(src.ServerConfig())))
	}
	srv := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(srv, f)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	fmt.Fprintf(os.Stderr, "floor listening on %s\n", lis.Addr())
	return srv.Serve(lis)
}

// serveStats writes the allocation counters the Prometheus Go collector
// exports as go_memstats_mallocs_total and go_memstats_alloc_bytes_total,
// from the same runtime/metrics samples, so that the floor's figures and
// keygate's compare, and the number of GC cycles.
func serveStats(w http.ResponseWriter, _ *http.Request) {
	s := []metrics.Sample{
		{Name: "/gc/heap/allocs:objects"},
		{Name: "/gc/heap/tiny/allocs:objects"},
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
	metrics.Read(s)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]uint64{
		"mallocs":     s[0].Value.Uint64() + s[1].Value.Uint64(),
		"alloc_bytes": s[2].Value.Uint64(),
		"gc_cycles":   s[3].Value.Uint64(),
	})
}
