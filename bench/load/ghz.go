package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// checkMethod is the call ghz makes.
const checkMethod = "envoy.service.auth.v3.Authorization.Check"

// writeProtoset writes the descriptor set ghz needs for Check: the file
// that declares the Authorization service and every file it imports,
// dependencies first, taken from the descriptors go-control-plane
// registered in this binary (so they are exactly the versions keygate and
// the floor are built with).
func writeProtoset(path string) error {
	var files []*descriptorpb.FileDescriptorProto
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		files = append(files, protodesc.ToFileDescriptorProto(fd))
	}
	add(authv3.File_envoy_service_auth_v3_external_auth_proto)
	b, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: files})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// checkRequest is the CheckRequest Envoy sends for GET /email/inbox with
// the given key: the headers a browser or SDK call typically carries, the
// source address (inside the 10.0.0.0/8 filter some seeded keys have) and
// the destination.
func checkRequest(key string, n int) *authv3.CheckRequest {
	sock := func(addr string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	rid := fmt.Sprintf("6f1c0f6e-2b7a-4c59-9d3e-%012d", n)
	headers := map[string]string{
		":authority":        "api.example.com",
		":method":           "GET",
		":path":             "/email/inbox",
		":scheme":           "https",
		"accept":            "application/json",
		"user-agent":        "example-sdk/2.3.1 (linux; go1.26)",
		"x-api-key":         key,
		"x-forwarded-for":   "10.1.2.3",
		"x-forwarded-proto": "https",
		"x-request-id":      rid,
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: sock("10.1.2.3", 51234)},
		Destination: &authv3.AttributeContext_Peer{Address: sock("10.0.0.10", 8443)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: rid, Method: "GET", Path: "/email/inbox", Host: "api.example.com",
			Scheme: "https", Protocol: "HTTP/2", Headers: headers,
		}},
	}}
}

// writeData writes the requests as ghz call data in binary: each message
// prefixed with its length (ghz's "count-delimited" --binary-file). ghz
// decodes them all once at start and sends them in round robin (call i
// gets message i mod len), so that per call it only marshals; JSON call
// data would be parsed on each message's first use, on the client's CPU.
func writeData(path string, reqs []*authv3.CheckRequest) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, r := range reqs {
		if _, err := protodelim.MarshalTo(w, r); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// unknownKeys returns n distinct random custom-format secrets that no
// seeded key has: well formed, so keygate hashes and looks each one up.
func unknownKeys(n int) []string {
	keys := make([]string, n)
	b := make([]byte, 16)
	for i := range keys {
		_, _ = rand.Read(b)
		keys[i] = "spray-" + hex.EncodeToString(b)
	}
	return keys
}

// ghzOptions are the settings every run shares.
type ghzOptions struct {
	bin         string
	cpu         string
	protoset    string
	concurrency int
	connections int
	gogc        string
	tls         *tlsSetup
}

// ghzResult is what the harness reads from ghz's JSON report.
type ghzResult struct {
	Count          uint64         `json:"count"`
	Total          time.Duration  `json:"total"`
	Rps            float64        `json:"rps"`
	StatusCodeDist map[string]int `json:"statusCodeDistribution"`
	ErrorDist      map[string]int `json:"errorDistribution"`
	Details        []struct {
		Latency time.Duration `json:"latency"`
		Status  string        `json:"status"`
	} `json:"details"`

	// Filled by the harness.
	p50, p99, p999 time.Duration
	okCount        int
	clientCPU      time.Duration // ghz's user+system time
	wall           time.Duration // ghz's run time including start-up
}

// run drives target for d with the call data in dataFile and returns the
// report, with percentiles computed from every request's latency (ghz's
// own distribution stops at p99).
//
// ghz always starts at the first request: offset is not used, so with ghz
// each run of a round-robin scenario starts the rotation again.
func (o ghzOptions) run(ctx context.Context, target, dataFile string, _ uint64, d time.Duration, reportPath string) (*ghzResult, error) {
	args := []string{"-c", o.cpu, o.bin}
	args = append(args, o.tls.ghzArgs()...)
	args = append(args,
		"--protoset", o.protoset,
		"--call", checkMethod,
		"--binary-file", dataFile,
		"--concurrency", strconv.Itoa(o.concurrency),
		"--connections", strconv.Itoa(o.connections),
		"--duration", d.String(),
		// Requests still in flight when the time is up are left out,
		// rather than counted as errors.
		"--duration-stop", "ignore",
		"--timeout", "10s",
		"--format", "json", "--output", reportPath,
		target,
	)
	var r ghzResult
	out, err := runClient(ctx, "ghz", args, o.gogc, reportPath, &r, &r.clientCPU, &r.wall)
	if err != nil {
		return nil, err
	}
	lat := make([]time.Duration, 0, len(r.Details))
	for _, d := range r.Details {
		if d.Status == "OK" {
			lat = append(lat, d.Latency)
		}
	}
	r.okCount = len(lat)
	slices.Sort(lat)
	r.p50, r.p99, r.p999 = percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 0.999)
	r.Details = nil
	// The report's details are large; only the figures are kept.
	_ = os.Remove(reportPath)
	if r.Count == 0 {
		return nil, fmt.Errorf("ghz made no request to %s: %s", target, out)
	}
	if bad := int(r.Count) - r.okCount; bad > 0 {
		return &r, fmt.Errorf("ghz: %d of %d calls to %s failed: %v", bad, r.Count, target, r.ErrorDist)
	}
	return &r, nil
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// runClient runs a load client under taskset (args start with taskset's
// own), then reads the JSON report it wrote to reportPath into report.
// cpu gets the client's user+system time, wall its run
// time including start-up.
func runClient(ctx context.Context, name string, args []string, gogc, reportPath string, report any, cpu, wall *time.Duration) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "taskset", args...)
	// The client's garbage collector competes with the client on its one
	// CPU: it runs less often. (GOGC=off is slower: fresh memory costs
	// page faults.)
	cmd.Env = append(os.Environ(), "GOGC="+gogc)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	*wall = time.Since(start)
	if err != nil {
		return out, fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	if ps := cmd.ProcessState; ps != nil {
		*cpu = ps.UserTime() + ps.SystemTime()
	}
	b, err := os.ReadFile(reportPath)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, report); err != nil {
		return out, fmt.Errorf("%s report %s: %w", name, reportPath, err)
	}
	return out, nil
}
