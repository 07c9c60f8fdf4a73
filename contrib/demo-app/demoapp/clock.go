package demoapp

import (
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"time"
)

// clockEvents is a Server-Sent Events stream that ticks every second with
// the time (RFC 3339) and the identity the proxy put on the request. It
// never ends on its own: the proxy ends it under the rule's policy with a
// final "portcullis-close" event, which the clock page shows.
type clockEvents struct {
	log  *slog.Logger
	tick time.Duration // default 1s
}

func (c *clockEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	who := r.Header.Get("X-User-Email")
	t := time.NewTicker(c.tick)
	defer t.Stop()
	for {
		// One event per line pair; the data holds no newline.
		if _, err := fmt.Fprintf(w, "event: tick\ndata: %s %s\n\n", time.Now().UTC().Format(time.RFC3339), who); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// clockPage shows the ticking clock and, when the proxy ends the stream,
// the reason from its final event.
type clockPage struct {
	pages *template.Template
	log   *slog.Logger
}

func (p *clockPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	render(w, p.log, p.pages, http.StatusOK, "clock.html", nil)
}
