package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// loadClient drives one server for one round and reports what it saw.
// ghz is the client the criteria are stated for; goClient
// (bench/client, -client go) is a diagnostic that decodes answers with
// compiled types, as Envoy does.
type loadClient interface {
	// run sends the requests of dataFile in turn from the offset-th
	// (modulo their number).
	run(ctx context.Context, target, dataFile string, offset uint64, d time.Duration, reportPath string) (*ghzResult, error)
}

// goClient runs bench/client with ghz's settings.
type goClient struct {
	bin         string
	cpu         string
	concurrency int
	connections int
	gogc        string
	tls         *tlsSetup
}

func (o goClient) run(ctx context.Context, target, dataFile string, offset uint64, d time.Duration, reportPath string) (*ghzResult, error) {
	args := []string{"-c", o.cpu, o.bin,
		"-addr", target,
		"-data", dataFile,
		"-offset", strconv.FormatUint(offset, 10),
		"-concurrency", strconv.Itoa(o.concurrency),
		"-connections", strconv.Itoa(o.connections),
		"-duration", d.String(),
		"-timeout", "10s",
		"-out", reportPath,
	}
	args = append(args, o.tls.clientArgs()...)
	var rep struct {
		Count   uint64         `json:"count"`
		Errors  map[string]int `json:"errors"`
		TotalNs int64          `json:"total_ns"`
		Rps     float64        `json:"rps"`
		P50Ns   int64          `json:"p50_ns"`
		P99Ns   int64          `json:"p99_ns"`
		P999Ns  int64          `json:"p999_ns"`
	}
	var cpu, wall time.Duration
	if _, err := runClient(ctx, "bench/client", args, o.gogc, reportPath, &rep, &cpu, &wall); err != nil {
		return nil, err
	}
	_ = os.Remove(reportPath)
	r := &ghzResult{
		Count: rep.Count, Total: time.Duration(rep.TotalNs), Rps: rep.Rps,
		p50: time.Duration(rep.P50Ns), p99: time.Duration(rep.P99Ns), p999: time.Duration(rep.P999Ns),
		okCount: int(rep.Count), wall: wall, clientCPU: cpu,
	}
	if r.Count == 0 {
		return nil, fmt.Errorf("bench/client made no successful call to %s: %v", target, rep.Errors)
	}
	bad := 0
	for _, n := range rep.Errors {
		bad += n
	}
	if bad > 0 {
		return r, fmt.Errorf("bench/client: %d calls to %s failed: %v", bad, target, rep.Errors)
	}
	return r, nil
}
