package main

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// roleCollector is the OpenTelemetry collector of the tracing figure: an
// OTLP/HTTP receiver on loopback (POST /v1/traces, protobuf) that decodes
// each export, counts its spans and drops them, answering as a collector
// does (200, an empty ExportTraceServiceResponse). It runs in a process of
// its own, so that what it spends is not counted as portcullis's. Commands:
//
//	spans   the spans and export requests received so far: spans= exports= bad=
func roleCollector() error {
	var spans, exports, bad atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			bad.Add(1)
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		n := 0
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				n += len(ss.Spans)
			}
		}
		spans.Add(int64(n))
		exports.Add(1)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	ln, err := listenLoopback()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	say("ready addr=%s", ln.Addr())
	serveCommands(func(f []string) {
		switch f[0] {
		case "spans":
			say("spans=%d exports=%d bad=%d", spans.Load(), exports.Load(), bad.Load())
		default:
			say("error unknown command")
		}
	})
	return srv.Close()
}
