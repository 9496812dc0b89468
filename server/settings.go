package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/consent"
)

// mergePatchType is the media type of PATCH /v1/admin/settings (RFC 7396).
const mergePatchType = "application/merge-patch+json"

// settingsMembers are the members of the settings document, in the order
// a PUT missing several names them. A PUT must carry every one of them
// (a complete document), and the server writes every one of them: a
// member left out never means "as before" nor, silently, "none".
var settingsMembers = []string{
	"version", "channels", "taxonomy", "policies", "keep_on_bump", "reask_cooldown",
	"allow_inference_while_off", "retention", "suspended", "suspend_reason",
}

// settingsZero is what the server writes for a member consent.Settings
// leaves out of its JSON when empty or false.
var settingsZero = map[string]json.RawMessage{
	"taxonomy":                  json.RawMessage(`{}`),
	"policies":                  json.RawMessage(`{}`),
	"keep_on_bump":              json.RawMessage(`[]`),
	"allow_inference_while_off": json.RawMessage(`false`),
	"suspended":                 json.RawMessage(`false`),
	"suspend_reason":            json.RawMessage(`""`),
}

// fullSettings is consent.Settings written with every member present
// (consent.Settings omits the empty ones), so that what GET answers is a
// complete document a PUT takes back as it is.
type fullSettings consent.Settings

func (f fullSettings) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(consent.Settings(f))
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for _, k := range settingsMembers {
		if _, ok := m[k]; ok {
			continue
		}
		z, ok := settingsZero[k]
		if !ok {
			return nil, fmt.Errorf("server: consent.Settings wrote no %q", k)
		}
		m[k] = z
	}
	return json.Marshal(m)
}

// codeWeakens is the problem code of a settings change refused because it
// loosens a consent rule.
const codeWeakens = "weakens-consent-rules"

// WeakensProblem is the 409 answer to a settings change that loosens a
// consent rule (consent.Weakens) sent without allow_weakening=true.
type WeakensProblem struct {
	Problem
	// Weakens lists what the change loosens, one line each.
	Weakens []string `json:"weakens"`
}

func (s *Server) getSettings(c *gin.Context) {
	set, err := s.st.Settings(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, fullSettings(set))
}

// putSettings replaces the settings with a complete document (every
// member of settingsMembers, else 422 naming the first missing) read at
// the current version (else 409 conflict).
func (s *Server) putSettings(c *gin.Context) {
	allow, ok := boolQuery(c, "allow_weakening", false)
	if !ok {
		return
	}
	body, ok := s.readBody(c, "application/json")
	if !ok {
		return
	}
	var next consent.Settings
	if !decodeBody(c, body, &next) {
		return
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil { // decoded above: an object
		failCode(c, http.StatusBadRequest, codeMalformed, "", "body is not valid JSON for this route: %v", err)
		return
	}
	for _, k := range settingsMembers {
		if _, ok := members[k]; !ok {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, k,
				"PUT takes the complete settings and %s is missing: send every member GET /v1/admin/settings answers, "+
					"or PATCH the members to change (Content-Type: %s)", k, mergePatchType)
			return
		}
	}
	if err := next.Validate(); err != nil {
		fail(c, err)
		return
	}
	cur, err := s.st.Settings(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	s.saveSettings(c, cur, next, allow)
}

// patchSettings applies an RFC 7396 JSON merge patch to the current
// settings: members of the patch replace those of the settings, null
// deletes a member, objects (taxonomy, policies, a namespace) merge
// recursively, arrays are replaced whole. The patch must name the version
// it was made against (422 without it, 409 conflict when stale); the
// merged document then goes through everything a PUT does.
func (s *Server) patchSettings(c *gin.Context) {
	allow, ok := boolQuery(c, "allow_weakening", false)
	if !ok {
		return
	}
	body, ok := s.readBody(c, mergePatchType)
	if !ok {
		return
	}
	var patch any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := dec.Decode(&patch)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if err != nil {
		failCode(c, http.StatusBadRequest, codeMalformed, "", "body is not valid JSON: %v", err)
		return
	}
	obj, isObj := patch.(map[string]any)
	if !isObj {
		failCode(c, http.StatusBadRequest, codeMalformed, "", "a merge patch of the settings is a JSON object")
		return
	}
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !slices.Contains(settingsMembers, k) { // also with null: a misspelt deletion is an error
			failCode(c, http.StatusBadRequest, codeMalformed, "", "body is not valid JSON for this route: json: unknown field %q", k)
			return
		}
	}
	v := obj["version"]
	if v == nil {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "version", "a patch names the version of the settings it was made against")
		return
	}
	n, isNum := v.(json.Number)
	ver, perr := strconv.ParseUint(string(n), 10, 64)
	if !isNum || perr != nil {
		failCode(c, http.StatusBadRequest, codeMalformed, "version", "body is not valid JSON for this route: version: want a non-negative integer")
		return
	}
	cur, err := s.st.Settings(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	if ver != cur.Version {
		staleVersion(c, cur.Version, ver)
		return
	}
	doc, err := json.Marshal(fullSettings(cur))
	if err != nil {
		fail(c, err)
		return
	}
	var target any
	dec = json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&target); err != nil {
		fail(c, err)
		return
	}
	merged, err := json.Marshal(mergePatch(target, patch))
	if err != nil {
		fail(c, err)
		return
	}
	var next consent.Settings
	if !decodeBody(c, merged, &next) {
		return
	}
	if err := next.Validate(); err != nil {
		fail(c, err)
		return
	}
	s.saveSettings(c, cur, next, allow)
}

// mergePatch applies an RFC 7396 merge patch to target and returns the
// result (target's maps may be modified).
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

// staleVersion answers 409 conflict for a change made at another version.
func staleVersion(c *gin.Context, cur, sent uint64) {
	failCode(c, http.StatusConflict, codeConflict, "version",
		"the settings are at version %d, the request was made at version %d: read them again", cur, sent)
}

// saveSettings saves next (valid) over cur: 409 conflict when next was
// made at another version; 409 weakens-consent-rules when it loosens a
// consent rule (consent.Weakens) and allow is false. With allow the change
// is made and the admin action log records what it loosens.
func (s *Server) saveSettings(c *gin.Context, cur, next consent.Settings, allow bool) {
	if next.Version != cur.Version {
		staleVersion(c, cur.Version, next.Version)
		return
	}
	if w := consent.Weakens(&cur, &next); len(w) > 0 {
		adminDetail(c, "weakens", w, "allow_weakening", allow)
		if !allow {
			p := Problem{Type: problemTypeBase + codeWeakens, Title: titles[codeWeakens], Status: http.StatusConflict,
				Detail: fmt.Sprintf("the change loosens %d consent rule(s); send it again with ?allow_weakening=true to make it on purpose", len(w))}
			c.Header("Content-Type", "application/problem+json")
			c.AbortWithStatusJSON(http.StatusConflict, WeakensProblem{Problem: p, Weakens: w})
			return
		}
	}
	saved, rc, err := s.client.SetSettings(c.Request.Context(), next, consent.ActorAdmin, adminSurface(c))
	s.answerSettings(c, saved, rc, err)
}

// SettingsHistoryResponse is GET /v1/admin/settings/history.
type SettingsHistoryResponse struct {
	// Receipts are the settings receipts, oldest first, within the
	// retention; each one's Diff lists what its change changed.
	Receipts []consent.Receipt `json:"receipts"`
	// ChainValid says whether they verify as a hash chain.
	ChainValid bool `json:"chain_valid"`
}

func (s *Server) getSettingsHistory(c *gin.Context) {
	rcs, err := s.st.SettingsReceipts(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	if rcs == nil {
		rcs = []consent.Receipt{}
	}
	c.JSON(http.StatusOK, SettingsHistoryResponse{Receipts: rcs, ChainValid: consent.VerifyLinks(rcs, s.cfg.ChainKey) == nil})
}
