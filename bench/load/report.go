package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summary is the medians over a server's rounds of one scenario.
type summary struct {
	rps, p50, p99, p999, cpu, allocs, bytes, client, server, steal float64
	share, clientReq                                               float64
	rpsMin, rpsMax                                                 float64
}

func summarize(rs []roundResult) summary {
	col := func(f func(r roundResult) float64) []float64 {
		out := make([]float64, len(rs))
		for i, r := range rs {
			out[i] = f(r)
		}
		return out
	}
	rps := col(func(r roundResult) float64 { return r.ghz.Rps })
	return summary{
		rps:    median(rps),
		rpsMin: slices.Min(rps), rpsMax: slices.Max(rps),
		p50:       median(col(func(r roundResult) float64 { return float64(r.ghz.p50) })),
		p99:       median(col(func(r roundResult) float64 { return float64(r.ghz.p99) })),
		p999:      median(col(func(r roundResult) float64 { return float64(r.ghz.p999) })),
		cpu:       median(col(func(r roundResult) float64 { return r.cpuPerReq })),
		allocs:    median(col(func(r roundResult) float64 { return r.allocsReq })),
		bytes:     median(col(func(r roundResult) float64 { return r.bytesReq })),
		client:    median(col(func(r roundResult) float64 { return r.clientBusy })),
		server:    median(col(func(r roundResult) float64 { return r.serverBusy })),
		steal:     median(col(func(r roundResult) float64 { return r.steal })),
		share:     median(col(func(r roundResult) float64 { return r.serverShare })),
		clientReq: median(col(func(r roundResult) float64 { return r.clientReq })),
	}
}

func dur(ns float64) string {
	d := time.Duration(ns)
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// verdict is one acceptance criterion's outcome.
type verdict struct {
	outcome, criterion, measured string
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func (h *harness) report() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := h.cfg
	m := h.machine

	p("\n# keygate load run, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	p("Machine: %d CPUs (%s), %s RAM, Linux %s; %s; PostgreSQL %s on the same machine (not pinned); load generator %s.\n",
		m.cpus, m.cpu, m.memTotal, m.kernel, m.goVersion, m.postgres, m.client)
	if h.clientName != "ghz" {
		p("**Load client: %s** (-client %s), not ghz: the same calls, answers decoded with compiled types as Envoy decodes them. "+
			"A diagnostic: the issue's criteria are stated for ghz; below, \"ghz\" in a column name means this client.\n", h.clientName, c.client)
	}
	procs, _ := cpuLines(c.serverCPU)
	p("Servers pinned with `taskset -c %s` (GOMAXPROCS %d), %s with `taskset -c %s`; --concurrency %d --connections %d, %v per round, "+
		"%d rounds per scenario alternating floor and keygate (A B A B …) after a %v warm-up of each (round robin: until every key in turn was asked for once); figures are medians over the rounds.\n",
		c.serverCPU, len(procs), h.clientName, c.clientCPU, c.concurrency, c.connections, c.duration, c.rounds, c.warmup)
	kgDesc := "built from ./cmd/keygate of this tree (go build, no -race)"
	if c.keygateBin != "" {
		kgDesc = "the binary " + c.keygateBin
	}
	p("keygate: %s, `serve --database-url … --log-level warn --pprof %s` (defaults otherwise: tracing off).\n", kgDesc, c.keygateArgs)
	p("Every request is GET /email/inbox with 10 headers; the hit key is seeded key %d (`%s`).\n\n", hitKey, hitSecret())

	p("## Results\n\n")
	p("| keys in DB | scenario | server | req/s | p50 | p99 | p99.9 | server CPU µs/req | allocs/req | B/req | req/s vs floor | CPU/req vs floor | p99 vs floor |\n")
	p("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range h.results {
		f, k := summarize(r.floor), summarize(r.kg)
		p("| %s | %s | floor | %.0f | %s | %s | %s | %.1f | %.1f | %.0f | | | |\n",
			count(r.keys), r.kind, f.rps, dur(f.p50), dur(f.p99), dur(f.p999), f.cpu, f.allocs, f.bytes)
		if len(r.resp) > 0 {
			x := summarize(r.resp)
			p("| %s | %s | floor+resp | %.0f | %s | %s | %s | %.1f | %.1f | %.0f | (%.1f%%) | (%.2fx) | (%.2fx) |\n",
				count(r.keys), r.kind, x.rps, dur(x.p50), dur(x.p99), dur(x.p999), x.cpu, x.allocs, x.bytes,
				100*x.rps/f.rps, x.cpu/f.cpu, x.p99/f.p99)
		}
		p("| %s | %s | keygate | %.0f | %s | %s | %s | %.1f | %.1f | %.0f | %.1f%% | %.2fx | %.2fx |\n",
			count(r.keys), r.kind, k.rps, dur(k.p50), dur(k.p99), dur(k.p999), k.cpu, k.allocs, k.bytes,
			100*k.rps/f.rps, k.cpu/f.cpu, k.p99/f.p99)
	}
	p("\nScenarios: hit = %s; rr = round robin over distinct valid service keys spread over the table; spray = %s. "+
		"floor+resp is the floor answering with keygate's own response to the scenario's request (allow: %d bytes on the wire, deny: %d; the floor's: 4): "+
		"its ratios, in parentheses, are to the floor; keygate's ratios are always to the floor.\n\n",
		"one valid key on every request", fmt.Sprintf("distinct random well-formed unknown keys, %s fresh ones per round", count(c.sprayKeys)),
		h.respBytes[hit], h.respBytes[spray])

	p("Who set the pace (medians over the rounds: the server process's CPU time over the load's duration; how busy each pinned CPU was, " +
		"all processes included, while the server was loaded; steal = hypervisor; machine load average before and after the scenario):\n\n")
	p("| keys in DB | scenario | server | server process | server CPU busy | client CPU busy | ghz CPU µs/req | req/s per server core (1e6 / CPU µs) | steal | req/s min–max over rounds | load average |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n")
	for _, r := range h.results {
		for _, s := range []struct {
			name string
			rs   []roundResult
		}{{"floor", r.floor}, {"floor+resp", r.resp}, {"keygate", r.kg}} {
			if len(s.rs) == 0 {
				continue
			}
			x := summarize(s.rs)
			p("| %s | %s | %s | %.0f%% | %.0f%% | %.0f%% | %.1f | %.0f | %.1f%% | %.0f–%.0f | %s → %s |\n", count(r.keys), r.kind, s.name,
				100*x.share, 100*x.server, 100*x.client, x.clientReq, 1e6/x.cpu, 100*x.steal, x.rpsMin, x.rpsMax, r.loadavg[0], r.loadavg[1])
		}
	}

	p("\nkeygate's counters over each scenario's keygate rounds (from /metrics) and PostgreSQL transactions in its database:\n\n")
	for _, r := range h.results {
		var parts []string
		for _, kv := range r.counters {
			parts = append(parts, kv[0]+" "+kv[1])
		}
		p("- %s keys, %s: %d requests; %s; PostgreSQL xact_commit +%d\n", count(r.keys), r.kind, r.pgRequests, strings.Join(parts, ", "), r.pgXacts)
	}

	p("\n## Warm load and memory\n\n")
	p("Memory is keygate's resident set (VmRSS) and live heap (heap in use after a forced GC), over keygate serving an empty database (RSS %s, heap %s).\n\n",
		mib(h.baseline.rss), mib(h.baseline.heap))
	p("| keys in DB | seed (COPY) | start to /readyz | RSS | RSS per key | live heap | heap per key | RSS after the load | live heap after the load | RSS / live heap after |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, ph := range h.phases {
		n := float64(ph.keys)
		p("| %s | %v | %v | %s | %.0f B | %s | %.0f B | %s | %s | %.2fx |\n", count(ph.keys),
			ph.seed.Round(100*time.Millisecond), ph.ready.Round(10*time.Millisecond),
			mib(ph.mem.rss), float64(ph.mem.rss-h.baseline.rss)/n,
			mib(ph.mem.heap), float64(ph.mem.heap-h.baseline.heap)/n, mib(ph.memAfter.rss),
			mib(ph.memAfter.heap), float64(ph.memAfter.rss)/float64(max(1, ph.memAfter.heap)))
	}

	p("\n## Acceptance (issue 6)\n\n")
	for _, v := range h.verdicts() {
		p("- **%s** %s: %s\n", v.outcome, v.criterion, v.measured)
	}
	p("\n## Acceptance (issue 22: stated for the compiled client, -client go; every feature on with -features)\n\n")
	for _, v := range h.verdicts22() {
		p("- **%s** %s: %s\n", v.outcome, v.criterion, v.measured)
	}
	for _, kind := range []scenarioKind{hit, spray} {
		if r := h.find(c.keys, kind); r != nil && len(r.resp) > 0 {
			x, k := summarize(r.resp), summarize(r.kg)
			p("- diagnostic, not a criterion: %s: keygate against the floor answering with keygate's own response (the same bytes for gRPC to encode and ghz to decode): "+
				"%.1f%% of its requests/s, %.2fx its CPU per request, %.2fx its p99\n", kind, 100*k.rps/x.rps, k.cpu/x.cpu, k.p99/x.p99)
		}
	}
	if note := h.paceNote(); note != "" {
		p("\n%s\n", note)
	}
	b.WriteString(h.answersReport())

	p("\n## Rounds\n\n(quiet: whether the machine's CPUs were at most %.0f%% busy before the round, waiting up to %v)\n\n", 100*c.quietBusy, c.quietWait)
	p("| keys | scenario | round | server | req/s | p50 | p99 | p99.9 | CPU µs/req | allocs/req | ghz µs/req | server process | client busy | server busy | GCs | quiet |\n| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range h.results {
		for i := range r.floor {
			rows := []struct {
				name string
				rr   roundResult
			}{{"floor", r.floor[i]}}
			if i < len(r.resp) {
				rows = append(rows, struct {
					name string
					rr   roundResult
				}{"floor+resp", r.resp[i]})
			}
			rows = append(rows, struct {
				name string
				rr   roundResult
			}{"keygate", r.kg[i]})
			for _, x := range rows {
				g := x.rr.ghz
				p("| %s | %s | %d | %s | %.0f | %s | %s | %s | %.1f | %.1f | %.1f | %.0f%% | %.0f%% | %.0f%% | %d | %v |\n", count(r.keys), r.kind, x.rr.round, x.name,
					g.Rps, dur(float64(g.p50)), dur(float64(g.p99)), dur(float64(g.p999)), x.rr.cpuPerReq, x.rr.allocsReq,
					x.rr.clientReq, 100*x.rr.serverShare, 100*x.rr.clientBusy, 100*x.rr.serverBusy, x.rr.gcs, x.rr.quiet)
			}
		}
	}

	for _, t := range h.traces {
		p("\n## Execution trace of keygate, %s\n\n(%s; `go tool trace` shows it)\n\n```\n%s```\n", t.title, t.file, t.summary)
	}
	for _, pr := range h.profiles {
		p("\n## Profile of keygate, %s\n\n(%s)\n\n```\n%s```\n", pr.title, pr.file, trimPprof(pr.top))
	}
	return b.String()
}

// trimPprof drops pprof's header lines that name the binary and the file.
func trimPprof(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// find returns the first result of a scenario on a database of keys.
func (h *harness) find(keys int, kind scenarioKind) *scenarioResult {
	for _, r := range h.results {
		if r.keys == keys && r.kind == kind {
			return r
		}
	}
	return nil
}

func (h *harness) verdicts() []verdict {
	c := h.cfg
	var vs []verdict
	notRun := func(crit string) { vs = append(vs, verdict{"NOT RUN", crit, "scenario not run"}) }

	critHit := []string{
		"cache hit: keygate >= 95% of the floor's requests/s",
		"cache hit: keygate server CPU per request <= 1.10x the floor's",
		"cache hit: keygate p99 <= 1.25x the floor's",
	}
	if r := h.find(c.keys, hit); r != nil {
		f, k := summarize(r.floor), summarize(r.kg)
		vs = append(vs,
			verdict{pass(k.rps >= 0.95*f.rps), critHit[0], fmt.Sprintf("%.1f%% (%.0f vs %.0f req/s, %s keys)", 100*k.rps/f.rps, k.rps, f.rps, count(r.keys))},
			verdict{pass(k.cpu <= 1.10*f.cpu), critHit[1], fmt.Sprintf("%.2fx (%.1f vs %.1f µs)", k.cpu/f.cpu, k.cpu, f.cpu)},
			verdict{pass(k.p99 <= 1.25*f.p99), critHit[2], fmt.Sprintf("%.2fx (%s vs %s)", k.p99/f.p99, dur(k.p99), dur(f.p99))},
		)
	} else {
		for _, cr := range critHit {
			notRun(cr)
		}
	}
	critSpray := []string{
		"spraying: PostgreSQL sees <= 1 query per 100 requests",
		"spraying: keygate >= 80% of the floor's requests/s",
	}
	if r := h.find(c.keys, spray); r != nil {
		f, k := summarize(r.floor), summarize(r.kg)
		per100 := 100 * float64(r.pgXacts) / float64(r.pgRequests)
		vs = append(vs,
			verdict{pass(per100 <= 1), critSpray[0], fmt.Sprintf("%.4f per 100 (xact_commit +%d over %d keygate requests, %s keys)", per100, r.pgXacts, r.pgRequests, count(r.keys))},
			verdict{pass(k.rps >= 0.80*f.rps), critSpray[1], fmt.Sprintf("%.1f%% (%.0f vs %.0f req/s)", 100*k.rps/f.rps, k.rps, f.rps)},
		)
	} else {
		for _, cr := range critSpray {
			notRun(cr)
		}
	}
	var large *phaseResult
	for _, ph := range h.phases {
		if c.large && ph.keys == c.largeKeys {
			large = ph
		}
	}
	if large != nil {
		n := float64(large.keys)
		vs = append(vs, verdict{"REPORTED", "warm load of " + count(large.keys) + " keys and resident memory per key",
			fmt.Sprintf("ready %v after start; %.0f B RSS per key (live heap %.0f B per key)",
				large.ready.Round(10*time.Millisecond), float64(large.mem.rss-h.baseline.rss)/n, float64(large.mem.heap-h.baseline.heap)/n)})
	} else {
		notRun("warm load of " + count(c.largeKeys) + " keys and resident memory per key (run with -large)")
	}
	return vs
}

// verdicts22 are issue 22's criteria: round robin over the -rr-keys
// working set and the cache hit against the floor, and resident memory
// after the round-robin load against the live heap then.
func (h *harness) verdicts22() []verdict {
	c := h.cfg
	var vs []verdict
	add := func(ok bool, crit, measured string) { vs = append(vs, verdict{pass(ok), crit, measured}) }
	notRun := func(crit string) { vs = append(vs, verdict{"NOT RUN", crit, "scenario not run"}) }
	rrCrit := "round robin over " + count(c.rrKeys) + " keys"
	rrKeys := c.rrKeys * 3 // the round-robin database (see buildScenario)
	r := h.find(rrKeys, rr)
	if r == nil && c.large {
		rrKeys = c.largeKeys // with -large, round robin runs on the large database
		r = h.find(rrKeys, rr)
	}
	if r != nil {
		rrCrit += " (" + count(rrKeys) + " in the database)"
		f, k := summarize(r.floor), summarize(r.kg)
		add(k.cpu <= 0.8*f.cpu, rrCrit+": CPU per request <= 0.8x the floor's", fmt.Sprintf("%.2fx (%.1f vs %.1f µs)", k.cpu/f.cpu, k.cpu, f.cpu))
		add(k.p99 <= 1.3*f.p99, rrCrit+": p99 <= 1.3x the floor's", fmt.Sprintf("%.2fx (%s vs %s)", k.p99/f.p99, dur(k.p99), dur(f.p99)))
		add(k.rps >= 0.9*f.rps, rrCrit+": requests/s >= 90% of the floor's", fmt.Sprintf("%.1f%% (%.0f vs %.0f req/s)", 100*k.rps/f.rps, k.rps, f.rps))
		for _, ph := range h.phases {
			if ph.keys == rrKeys {
				add(ph.memAfter.rss <= 2*ph.memAfter.heap, "resident memory after the round-robin load <= 2x the live heap",
					fmt.Sprintf("%.2fx (%s RSS, %s live heap)", float64(ph.memAfter.rss)/float64(max(1, ph.memAfter.heap)), mib(ph.memAfter.rss), mib(ph.memAfter.heap)))
			}
		}
	} else {
		notRun(rrCrit)
	}
	if r := h.find(c.keys, hit); r != nil {
		f, k := summarize(r.floor), summarize(r.kg)
		add(k.cpu <= 0.7*f.cpu, "cache hit: CPU per request <= 0.7x the floor's", fmt.Sprintf("%.2fx (%.1f vs %.1f µs)", k.cpu/f.cpu, k.cpu, f.cpu))
		add(k.p99 <= 1.25*f.p99, "cache hit: p99 <= 1.25x the floor's", fmt.Sprintf("%.2fx (%s vs %s)", k.p99/f.p99, dur(k.p99), dur(f.p99)))
	} else {
		notRun("cache hit")
	}
	if h.clientName != "bench/client" {
		vs = append(vs, verdict{"NOTE", "client", "measured with " + h.clientName + ", not the compiled client the criteria name"})
	}
	return vs
}

// paceNote explains which side limited the hit scenario's throughput, so
// that a requests/s ratio is read for what it measures.
func (h *harness) paceNote() string {
	r := h.find(h.cfg.keys, hit)
	if r == nil {
		return ""
	}
	f, k := summarize(r.floor), summarize(r.kg)
	if f.client < 0.9 {
		return ""
	}
	note := fmt.Sprintf("Note: in the hit scenario %[1]s's CPU was %.0[2]f%% busy under load while the floor process used %.0[3]f%% of its CPU and keygate %.0[4]f%%: "+
		"the client, not the servers, set the pace, so requests/s compares what each server's answers cost %[1]s. "+
		"%[1]s spent %.0[5]f µs of CPU per request against the floor and %.0[6]f µs against keygate",
		h.clientName, 100*f.client, 100*f.share, 100*k.share, f.clientReq, k.clientReq)
	if len(r.resp) > 0 {
		note += fmt.Sprintf(" (%.0f µs against the floor answering with keygate's response)", summarize(r.resp).clientReq)
	}
	return note + ". Server CPU per request is the measure of the servers themselves."
}
