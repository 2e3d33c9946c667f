// Command client is a load client for Authorization/Check that decodes
// answers the way Envoy does: with compiled message types
// (go-control-plane's generated Go code), not by reflection over a
// descriptor as ghz does. bench/load runs it in place of ghz with
// -client go, as a diagnostic: on one CPU, ghz's reflective decoding of
// an allow with identity headers and metadata costs it more than either
// server's whole Check, so with ghz requests/s measures the client.
//
// It makes the calls ghz makes with the harness's settings: -concurrency
// workers over -connections connections, for -duration, the requests of
// -data (ghz's count-delimited binary call data) in round robin, calls
// still in flight at the end left out. It writes a JSON report of the
// counts and the latency percentiles to -out, and stops by itself.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// Report is what the client writes to -out; bench/load reads it.
type Report struct {
	Count   uint64         `json:"count"`    // calls answered OK within the duration
	Errors  map[string]int `json:"errors"`   // calls that failed, by gRPC code
	TotalNs int64          `json:"total_ns"` // the measured time
	Rps     float64        `json:"rps"`
	P50Ns   int64          `json:"p50_ns"`
	P99Ns   int64          `json:"p99_ns"`
	P999Ns  int64          `json:"p999_ns"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9191", "server address (loopback)")
	data := flag.String("data", "", "call data: CheckRequests, each prefixed with its length (ghz --binary-file)")
	concurrency := flag.Int("concurrency", 50, "concurrent calls")
	connections := flag.Int("connections", 1, "gRPC connections")
	duration := flag.Duration("duration", 6*time.Second, "how long to send calls")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of each call")
	out := flag.String("out", "", "where to write the JSON report (default stdout)")
	offset := flag.Uint64("offset", 0, "start at this request of -data (modulo their number), to continue a round robin a previous run stopped")
	cpuProfile := flag.String("cpuprofile", "", "write the client's own CPU profile here (to see what a scenario costs the client)")
	flag.StringVar(&tlsFiles.ca, "ca", "", "TLS: PEM CAs to check the server with (TLS on when set)")
	flag.StringVar(&tlsFiles.cert, "cert", "", "TLS: PEM client certificate (mTLS)")
	flag.StringVar(&tlsFiles.key, "key", "", "TLS: PEM private key of -cert")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/client:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*addr, *data, *offset, *concurrency, *connections, *duration, *timeout, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/client:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(addr, dataFile string, offset uint64, concurrency, connections int, d, timeout time.Duration, out string) error {
	if concurrency < 1 || connections < 1 || connections > concurrency {
		return errors.New("need 1 <= -connections <= -concurrency")
	}
	reqs, err := readData(dataFile)
	if err != nil {
		return err
	}
	creds, err := transport()
	if err != nil {
		return err
	}
	conns := make([]*grpc.ClientConn, connections)
	for i := range conns {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(encodedCodec{})))
		if err != nil {
			return err
		}
		defer cc.Close()
		// One call before the clock starts, so that the connection is up.
		if err := cc.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, &reqs[0], new(authv3.CheckResponse)); err != nil {
			return fmt.Errorf("first call to %s: %w", addr, err)
		}
		conns[i] = cc
	}

	var next atomic.Uint64 // round robin over reqs, as ghz
	next.Store(offset)
	start := time.Now()
	deadline := start.Add(d)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	type worker struct {
		lat    []time.Duration
		errors map[string]int
	}
	workers := make([]worker, concurrency)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func(w *worker, cc *grpc.ClientConn) {
			defer wg.Done()
			w.lat = make([]time.Duration, 0, 1<<14)
			w.errors = map[string]int{}
			for ctx.Err() == nil {
				req := &reqs[(next.Add(1)-1)%uint64(len(reqs))]
				callCtx, cancelCall := context.WithTimeout(context.Background(), timeout)
				t0 := time.Now()
				// Decoded with compiled types, as Envoy and the generated
				// client do.
				err := cc.Invoke(callCtx, authv3.Authorization_Check_FullMethodName, req, new(authv3.CheckResponse))
				t1 := time.Now()
				cancelCall()
				if t1.After(deadline) {
					return // in flight when the time was up: left out
				}
				if err != nil {
					w.errors[status.Code(err).String()]++
					continue
				}
				w.lat = append(w.lat, t1.Sub(t0))
			}
		}(&workers[w], conns[w%connections])
	}
	wg.Wait()

	var all []time.Duration
	rep := Report{Errors: map[string]int{}, TotalNs: int64(d)}
	for _, w := range workers {
		all = append(all, w.lat...)
		for code, n := range w.errors {
			rep.Errors[code] += n
		}
	}
	slices.Sort(all)
	rep.Count = uint64(len(all))
	rep.Rps = float64(rep.Count) / d.Seconds()
	rep.P50Ns, rep.P99Ns, rep.P999Ns = int64(percentile(all, 0.50)), int64(percentile(all, 0.99)), int64(percentile(all, 0.999))

	w := io.Writer(os.Stdout)
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return json.NewEncoder(w).Encode(rep)
}

// encodedRequest is a CheckRequest already in its wire form: read from
// the call data once, sent as it is. A client that re-encoded 100,000
// request messages on every call would spend more of the shared machine
// than the server it measures (its live heap of messages made every
// round-robin call cost it 70 to 120 µs against 20 for one request).
type encodedRequest []byte

// encodedCodec sends an encodedRequest's bytes unchanged and decodes
// answers into the compiled message types, as the generated client does.
type encodedCodec struct{}

func (encodedCodec) Name() string { return "proto" }

func (encodedCodec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(*encodedRequest)
	if !ok {
		return nil, fmt.Errorf("bench/client: cannot send %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*r)}, nil
}

func (encodedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("bench/client: cannot decode into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// readData reads ghz's count-delimited binary call data: each message is
// checked to be a CheckRequest and kept encoded, all in one buffer.
func readData(path string) ([]encodedRequest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var (
		all  []byte
		ends []int
	)
	for {
		req := new(authv3.CheckRequest)
		if err := (protodelim.UnmarshalOptions{MaxSize: -1}).UnmarshalFrom(r, req); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: message %d: %w", path, len(ends), err)
		}
		if all, err = (proto.MarshalOptions{Deterministic: true}).MarshalAppend(all, req); err != nil {
			return nil, fmt.Errorf("%s: message %d: %w", path, len(ends), err)
		}
		ends = append(ends, len(all))
	}
	if len(ends) == 0 {
		return nil, fmt.Errorf("%s: no CheckRequest", path)
	}
	reqs := make([]encodedRequest, len(ends))
	start := 0
	for i, end := range ends {
		reqs[i] = encodedRequest(all[start:end:end])
		start = end
	}
	return reqs, nil
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// tlsFiles are the -ca, -cert and -key flags.
var tlsFiles struct{ ca, cert, key string }

// transport is cleartext, or TLS (with a client certificate when given)
// when -ca is set.
func transport() (credentials.TransportCredentials, error) {
	if tlsFiles.ca == "" {
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(tlsFiles.ca)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-ca %s: no certificate", tlsFiles.ca)
	}
	if tlsFiles.cert != "" {
		pair, err := tls.LoadX509KeyPair(tlsFiles.cert, tlsFiles.key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(cfg), nil
}
