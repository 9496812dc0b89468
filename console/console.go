package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Prefix is the path the console is served under.
const Prefix = "/console"

// CSP is the Content-Security-Policy of every console answer: everything
// from the server itself, no inline script or style, no framing, no form
// posts.
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
	"script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

//go:embed assets
var embedded embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

var assets = load()

// load reads the embedded files once (the set is fixed at build time).
func load() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(embedded, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, "assets/")] = asset{body: b, ctype: contentType(p), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: reading the embedded assets: " + err.Error())
	}
	return out
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json":
		return "application/json; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	}
	return "application/octet-stream"
}

// Assets lists the names of the embedded files (index.html, app.js, ...),
// as served under Prefix + "/".
func Assets() []string {
	out := make([]string, 0, len(assets))
	for n := range assets {
		out = append(out, n)
	}
	return out
}

// Asset returns the content of the embedded file name, and whether there
// is one.
func Asset(name string) ([]byte, bool) {
	a, ok := assets[name]
	return bytes.Clone(a.body), ok
}

// Handler serves the console: GET (and HEAD) of Prefix redirects to
// Prefix + "/", which is index.html; Prefix + "/<name>" is the embedded
// file name; anything else is 404, and a method other than GET or HEAD
// 405. Every answer carries CSP and the other strict headers; files are
// revalidated on each use (Cache-Control: no-cache, with an ETag), so an
// upgraded binary's console is never mixed with a cached one.
func Handler() http.Handler { return http.HandlerFunc(serve) }

// Owns reports whether the console answers the URL path p: Prefix and
// everything under Prefix + "/".
func Owns(p string) bool { return p == Prefix || strings.HasPrefix(p, Prefix+"/") }

// NoRoute is a gin handler for an engine's NoRoute chain, before its own
// 404: a request whose path the console owns (Owns) is served by Handler
// and the chain stops there; any other is left to the next handler. It
// keeps the console out of the engine's routes (which the API's OpenAPI
// document lists exactly) while serving it from the same engine and its
// middleware.
func NoRoute(c *gin.Context) {
	if !Owns(c.Request.URL.Path) {
		return
	}
	c.Abort()
	serve(c.Writer, c.Request)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		h.Set("Cache-Control", "no-store")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == Prefix {
		h.Set("Cache-Control", "no-store")
		h.Set("Location", Prefix+"/")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(p, Prefix+"/")
	if name == "" {
		name = "index.html"
	}
	a, found := assets[name]
	if !ok || !found {
		h.Set("Cache-Control", "no-store")
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
