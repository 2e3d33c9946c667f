package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// The answer-cost diagnostic (-answers): ghz, not the servers, sets the
// pace of these runs, so requests/s compares what each server's answers
// cost ghz to receive and decode. To show which part of keygate's allow
// costs what, the floor answers variants of it — from its own minimal OK
// to keygate's allow as sent — driven exactly as the servers are, with the
// rounds interleaved across the variants.

// answerVariant is one response the floor sends in the diagnostic.
type answerVariant struct {
	name  string
	resp  *authv3.CheckResponse
	bytes int
	runs  []roundResult
}

// specMetadata are the dynamic_metadata fields SPEC §5 names.
var specMetadata = []string{"key_id", "key_type", "app_id", "tenant_id", "service", "operation"}

// answerVariants derives the variants from keygate's allow.
func answerVariants(allow *authv3.CheckResponse) []*answerVariant {
	minimal := &authv3.CheckResponse{Status: &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}

	noMeta := proto.Clone(allow).(*authv3.CheckResponse)
	noMeta.DynamicMetadata = nil

	specMeta := proto.Clone(allow).(*authv3.CheckResponse)
	fields := map[string]*structpb.Value{}
	for _, k := range specMetadata {
		if v, ok := allow.GetDynamicMetadata().GetFields()[k]; ok {
			fields[k] = v
		}
	}
	specMeta.DynamicMetadata = &structpb.Struct{Fields: fields}

	noIdentity := proto.Clone(allow).(*authv3.CheckResponse)
	if ok := noIdentity.GetOkResponse(); ok != nil {
		ok.Headers = nil
	}

	out := []*answerVariant{
		{name: "the floor's minimal OK", resp: minimal},
		{name: "keygate's allow without dynamic_metadata (key header removed, identity headers set)", resp: noMeta},
		{name: "keygate's allow with only SPEC §5's six metadata fields", resp: specMeta},
		{name: "keygate's allow without identity headers (key header removed, metadata kept)", resp: noIdentity},
		{name: "keygate's allow as sent", resp: allow},
	}
	for _, v := range out {
		v.bytes = proto.Size(v.resp)
	}
	return out
}

// measureAnswers runs the diagnostic with the hit scenario's call data.
func (h *harness) measureAnswers(ctx context.Context, kg *server, sc *scenario) error {
	allow, err := h.keygateAnswer(ctx, kg, sc)
	if err != nil {
		return err
	}
	if allow.GetOkResponse() == nil {
		return fmt.Errorf("answers: keygate did not allow the hit scenario's request")
	}
	h.logf("-- answer cost: the floor answering variants of keygate's allow")
	variants := answerVariants(allow)
	servers := make([]*server, len(variants))
	defer func() {
		for _, s := range servers {
			if s != nil {
				s.stop()
			}
		}
	}()
	for i, v := range variants {
		b, err := protojson.Marshal(v.resp)
		if err != nil {
			return err
		}
		path := filepath.Join(h.out, fmt.Sprintf("answer-%d.json", i))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		if servers[i], err = h.startFloor(ctx, fmt.Sprintf("floor+answer%d", i), "--response-file", path); err != nil {
			return err
		}
		if _, err := h.runClient(ctx, servers[i], sc.file(0), h.cfg.warmup, filepath.Join(h.out, "ghz-warmup.json")); err != nil {
			return fmt.Errorf("warm-up of %s: %w", servers[i].name, err)
		}
	}
	for r := 1; r <= h.cfg.rounds; r++ {
		for i, v := range variants {
			rr, err := h.measure(ctx, servers[i], sc.file(r), r)
			if err != nil {
				return err
			}
			h.logf("   round %d answer %d (%d bytes) %8.0f req/s  ghz %5.1f µs/req  server cpu %5.1f µs/req", r, i, v.bytes, rr.ghz.Rps, rr.clientReq, rr.cpuPerReq)
			v.runs = append(v.runs, rr)
		}
	}
	h.answers = variants
	return nil
}

// answersReport is the diagnostic's section of results.md.
func (h *harness) answersReport() string {
	if len(h.answers) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("\n## What an answer costs the client (diagnostic)\n\n")
	p("The floor answering variants of keygate's allow to the hit scenario's requests, driven as above, rounds interleaved across the variants (medians). " +
		"ghz µs/req is ghz's CPU per request: while ghz sets the pace, requests/s is its inverse.\n\n")
	p("| the floor answers | bytes on the wire | req/s | vs the minimal OK | ghz CPU µs/req | server CPU µs/req |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	base := summarize(h.answers[0].runs)
	for _, v := range h.answers {
		x := summarize(v.runs)
		p("| %s | %d | %.0f | %.1f%% | %.1f | %.1f |\n", v.name, v.bytes, x.rps, 100*x.rps/base.rps, x.clientReq, x.cpu)
	}
	return b.String()
}
