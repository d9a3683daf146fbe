package logtotest

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxBodyBytes bounds request bodies; Logto's koa-body default is 1 MB for JSON.
const maxBodyBytes = 1 << 20

// encodeJSON marshals v like Node's JSON.stringify: no HTML escaping and no
// trailing newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// etagOf is the strong ETag the npm "etag" package computes for a body, which
// is what Logto's koa-body-etag middleware sets on every GET.
func etagOf(body []byte) string {
	sum := sha1.Sum(body)
	hash := base64.StdEncoding.EncodeToString(sum[:])[:27]
	return `"` + strconv.FormatInt(int64(len(body)), 16) + "-" + hash + `"`
}

// etagMatches implements Koa's ctx.fresh for If-None-Match: "*" or any listed
// tag equal to etag once weak prefixes are ignored.
func etagMatches(ifNoneMatch, etag string) bool {
	if ifNoneMatch == "" {
		return false
	}
	if strings.TrimSpace(ifNoneMatch) == "*" {
		return true
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, tag := range strings.Split(ifNoneMatch, ",") {
		if strings.TrimPrefix(strings.TrimSpace(tag), "W/") == want {
			return true
		}
	}
	return false
}

// writeJSON answers with v as JSON. A GET answered 200 under /api gets an
// ETag, and a 304 with an empty body when If-None-Match matches it.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := encodeJSON(v)
	if err != nil {
		s.log.Error("logtotest: encode response", "path", r.URL.Path, "err", err)
		s.writeInternalError(w)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	if status == http.StatusOK && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.HasPrefix(r.URL.Path, "/api/") {
		tag := etagOf(body)
		h.Set("ETag", tag)
		if etagMatches(r.Header.Get("If-None-Match"), tag) {
			h.Del("Content-Type")
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// writeNoContent answers 204 (or another bodiless status).
func writeNoContent(w http.ResponseWriter, status int) {
	w.WriteHeader(status)
}

// writeError answers with a Logto error. Anything that is not an APIError or
// an OIDC error becomes Koa's bare 500 body.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var apiErr *APIError
	var oidcErr *oidcError
	switch {
	case errors.As(err, &apiErr):
		s.writeJSON(w, r, apiErr.Status, apiErr)
	case errors.As(err, &oidcErr):
		s.writeJSON(w, r, oidcErr.status, oidcErr)
	default:
		s.log.Error("logtotest: internal error", "path", r.URL.Path, "err", err)
		s.writeInternalError(w)
	}
}

func (s *Server) writeInternalError(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, `{"message":"Internal server error."}`)
}

// writeKoaText answers like Koa does when nothing handled a request: a plain
// text status phrase.
func writeKoaText(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, http.StatusText(status))
}

// readBody reads a JSON request body. An empty body reads as {} (koa-body
// does the same); malformed JSON is Koa's 400 {"message": ...}.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &APIError{Status: http.StatusRequestEntityTooLarge, Message: "request entity too large"}
		}
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return []byte(`{}`), nil
	}
	if !json.Valid(b) {
		return nil, &APIError{Status: http.StatusBadRequest, Message: "Invalid JSON in request body."}
	}
	return b, nil
}
