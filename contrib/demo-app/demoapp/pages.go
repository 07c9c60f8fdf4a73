package demoapp

import (
	"bytes"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// flowPage serves /login or /registration: the minimal self-service UI
// that renders a Kratos browser flow.
//
// Without ?flow= it starts a new browser flow by sending the browser to
// Kratos's /self-service/<kind>/browser (through the proxy), passing
// return_to on (Kratos checks it against its allowed_return_urls, so this
// page is not an open redirect); Kratos answers with a redirect back here
// carrying the flow id. With ?flow= it fetches the flow from Kratos's public
// API with the visitor's cookies and renders its form, which the browser
// submits straight to Kratos. Kratos then redirects to the return URL (a
// success, with the session cookie set) or back here with messages.
type flowPage struct {
	kind    string // "login" or "registration"
	kratos  *kratosClient
	browser string // Kratos's public API as browsers reach it
	pages   *template.Template
	log     *slog.Logger
}

// flowView is the flow template's data.
type flowView struct {
	Kind      string
	Title     string
	Action    string
	Method    string
	Messages  []message
	Fields    []field
	OtherHref string
	OtherText string
}

func (p *flowPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("flow")
	if id == "" {
		p.begin(w, r, r.URL.Query().Get("return_to"))
		return
	}
	f, err := p.kratos.Flow(r.Context(), p.kind, id, r.Header.Get("Cookie"))
	switch {
	case err == nil:
	case restartable(err) && !isCSRF(err):
		// Unknown or expired: a fresh flow is what the visitor wants.
		p.begin(w, r, r.URL.Query().Get("return_to"))
		return
	case isCSRF(err):
		// Restarting would loop if the browser drops Kratos's cookies;
		// say what is wrong instead.
		render(w, p.log, p.pages, http.StatusForbidden, "error.html", errorView{
			Title:   "This form belongs to another browser session",
			Message: "Kratos did not receive the cookie it set when the form was created. Allow cookies for this site and open the demo at the address it printed.",
			Retry:   "/" + p.kind,
		})
		return
	default:
		p.log.Error("fetching a self-service flow", "kind", p.kind, "error", err)
		render(w, p.log, p.pages, http.StatusBadGateway, "error.html", errorView{
			Title:   "Kratos could not be asked for the form",
			Message: "The identity service did not answer as expected. Check that it is running.",
			Retry:   "/" + p.kind,
		})
		return
	}
	v := flowView{Kind: p.kind, Action: f.UI.Action, Method: f.UI.Method, Messages: f.UI.Messages, Fields: f.fields()}
	if v.Method == "" {
		v.Method = http.MethodPost
	}
	other := "registration"
	v.Title, v.OtherText = "Sign in", "No account yet? Register"
	if p.kind == "registration" {
		other = "login"
		v.Title, v.OtherText = "Create an account", "Already registered? Sign in"
	}
	v.OtherHref = "/" + other
	if f.ReturnTo != "" {
		v.OtherHref += "?return_to=" + url.QueryEscape(f.ReturnTo)
	}
	render(w, p.log, p.pages, http.StatusOK, "flow.html", v)
}

// begin starts a new browser flow on Kratos.
func (p *flowPage) begin(w http.ResponseWriter, r *http.Request, returnTo string) {
	target := p.browser + "/self-service/" + p.kind + "/browser"
	if returnTo != "" {
		target += "?return_to=" + url.QueryEscape(returnTo)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// isCSRF reports a flow Kratos refused because the browser's CSRF cookie
// did not come with the request.
func isCSRF(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status == http.StatusForbidden
}

// errorView is the error template's data.
type errorView struct {
	Title   string
	Message string
	Detail  string
	Retry   string
}

// errorPage serves /error, where Kratos sends the browser when a flow
// fails in a way the flow pages cannot show (a misconfigured return_to, a
// broken flow).
type errorPage struct {
	kratos *kratosClient
	pages  *template.Template
	log    *slog.Logger
}

func (p *errorPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := errorView{Title: "Something went wrong", Retry: "/login"}
	if id := r.URL.Query().Get("id"); id != "" {
		fe, err := p.kratos.FlowError(r.Context(), id, r.Header.Get("Cookie"))
		if err != nil {
			p.log.Error("fetching a self-service error", "error", err)
			v.Message = "Kratos reported an error that could not be fetched."
		} else {
			v.Message, v.Detail = fe.Message, fe.Reason
		}
	}
	render(w, p.log, p.pages, http.StatusOK, "error.html", v)
}

// indexView is the index template's data.
type indexView struct {
	Subject   string
	Email     string
	LogoutURL string
	// SessionURL is Kratos's /sessions/whoami as the browser reaches it:
	// the page asks it, after a tunnel ends, whether the visitor is still
	// signed in.
	SessionURL string
	// MaxLifetime is the rule's websocket.max_lifetime in seconds (0:
	// unknown, no countdown).
	MaxLifetime int
}

// indexPage serves the echo page. It is meant to be reached through
// portcullis, whose header mutator tells it who the visitor is (X-User,
// X-User-Email); reached directly it shows no identity. The demo trusts
// these headers because it listens on loopback behind the proxy only — an
// application that can be reached around its proxy must not.
type indexPage struct {
	kratos   *kratosClient
	browser  string        // Kratos's public API as browsers reach it
	lifetime *ruleLifetime // nil: no countdown
	pages    *template.Template
	log      *slog.Logger
}

func (p *indexPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := indexView{Subject: r.Header.Get(HeaderSubject), Email: r.Header.Get(HeaderEmail), SessionURL: p.browser + "/sessions/whoami"}
	if p.lifetime != nil {
		if d, err := p.lifetime.MaxLifetime(r.Context()); err != nil {
			p.log.Warn("no tunnel countdown", "error", err)
		} else {
			v.MaxLifetime = int(d.Round(time.Second) / time.Second)
		}
	}
	if cookie := r.Header.Get("Cookie"); cookie != "" {
		// The signed logout link; without a session there is none to show.
		if u, err := p.kratos.LogoutURL(r.Context(), cookie); err == nil {
			v.LogoutURL = u
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	render(w, p.log, p.pages, http.StatusOK, "index.html", v)
}

// render executes a page into a buffer first, so a template error is a
// clean 500 rather than half a page.
func render(w http.ResponseWriter, log *slog.Logger, pages *template.Template, status int, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		log.Error("rendering a page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}
