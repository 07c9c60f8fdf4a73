package demoapp

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// echoService is the WebSocket echo of the Oathkeeper WebSocket guide,
// written with gobwas/ws: it greets the visitor by the identity the proxy
// put on the handshake and then sends every text or binary message back
// unchanged. Pings are answered and a Close is returned with its code, as
// RFC 6455 section 5.5.1 asks; that Close reply is what lets the proxy end
// a tunnel cleanly at its max lifetime.
type echoService struct {
	log *slog.Logger
	// maxMessage bounds one message (RFC 6455 section 10.4); a larger one
	// closes the connection with 1009.
	maxMessage int64
	// idle closes a connection that sent nothing for this long, for
	// clients that reach the app without the proxy's own limits.
	idle time.Duration
}

func (e *echoService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// UpgradeHTTP answers a request that is not a valid handshake with 400
	// itself.
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		e.log.Info("websocket handshake refused", "error", err)
		return
	}
	defer conn.Close()
	who := r.Header.Get(HeaderEmail)
	if who == "" {
		who = r.Header.Get(HeaderSubject)
	}
	if who == "" {
		who = "an anonymous visitor (not through portcullis?)"
	}
	e.log.Info("websocket opened", "user", who)
	if err := wsutil.WriteServerText(conn, []byte("connected as "+who+"; every message you send comes back")); err != nil {
		return
	}
	err = e.relay(conn)
	var closed wsutil.ClosedError
	if errors.As(err, &closed) {
		e.log.Info("websocket closed by peer", "user", who, "code", int(closed.Code), "reason", closed.Reason)
		return
	}
	e.log.Info("websocket ended", "user", who, "error", err)
}

// relay echoes data messages until the peer closes or the connection
// fails. It returns wsutil.ClosedError after replying to a Close.
func (e *echoService) relay(conn net.Conn) error {
	control := wsutil.ControlFrameHandler(conn, ws.StateServerSide)
	rd := &wsutil.Reader{
		Source:         conn,
		State:          ws.StateServerSide,
		CheckUTF8:      true,
		MaxMessageSize: e.maxMessage,
		OnIntermediate: control,
	}
	for {
		if e.idle > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(e.idle))
		}
		hdr, err := rd.NextFrame()
		if err != nil {
			if errors.Is(err, wsutil.ErrMessageTooLarge) || errors.Is(err, wsutil.ErrFrameTooLarge) {
				closeWith(conn, ws.StatusMessageTooBig, "message too large")
			}
			return err
		}
		if hdr.OpCode.IsControl() {
			if err := control(hdr, rd); err != nil {
				return err
			}
			continue
		}
		payload, err := io.ReadAll(rd)
		if err != nil {
			if errors.Is(err, wsutil.ErrInvalidUTF8) {
				closeWith(conn, ws.StatusInvalidFramePayloadData, "invalid UTF-8")
			}
			return err
		}
		if err := wsutil.WriteServerMessage(conn, hdr.OpCode, payload); err != nil {
			return err
		}
	}
}

// closeWith sends a Close and, as RFC 6455 section 7.1.1 asks, lets the
// peer finish before the connection closes: what it still sends is read
// and dropped (for a second at most), so closing does not reset the
// connection under the Close frame.
func closeWith(conn net.Conn, code ws.StatusCode, reason string) {
	if err := ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason))); err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, 1<<20))
}
