package consent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// settingsAlias has Settings' fields without its methods (no recursion).
type settingsAlias Settings

// settingsJSON is Settings as JSON: durations as Go duration strings.
type settingsJSON struct {
	settingsAlias
	ReaskCooldown jsonDuration `json:"reask_cooldown"`
	Retention     jsonDuration `json:"retention"`
}

// settingsIn reads durations raw, so a bad one is reported with its field.
type settingsIn struct {
	settingsAlias
	ReaskCooldown json.RawMessage `json:"reask_cooldown"`
	Retention     json.RawMessage `json:"retention"`
}

// MarshalJSON writes s with its durations as Go duration strings
// ("720h0m0s"), never as nanoseconds.
func (s Settings) MarshalJSON() ([]byte, error) {
	return json.Marshal(settingsJSON{settingsAlias: settingsAlias(s), ReaskCooldown: jsonDuration(s.ReaskCooldown), Retention: jsonDuration(s.Retention)})
}

// UnmarshalJSON reads settings: durations as Go duration strings ("720h");
// plain numbers (nanoseconds, as settings were once stored) are read too.
// Unknown fields are an error. A value of the wrong type or a bad duration
// is a *FieldError wrapping ErrInvalidSettings that names its field.
func (s *Settings) UnmarshalJSON(b []byte) error {
	var v settingsIn
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			field := strings.TrimPrefix(ute.Field, "settingsAlias.")
			return fieldErr(field, ErrInvalidSettings, "want %s, got %s", ute.Type, ute.Value)
		}
		return err // syntax, unknown fields: as encoding/json says
	}
	var rc, rt jsonDuration
	for _, d := range []struct {
		name string
		raw  json.RawMessage
		to   *jsonDuration
	}{{"reask_cooldown", v.ReaskCooldown, &rc}, {"retention", v.Retention, &rt}} {
		if len(d.raw) == 0 {
			continue
		}
		if err := d.to.UnmarshalJSON(d.raw); err != nil {
			return fieldErr(d.name, ErrInvalidSettings, "%v", err)
		}
	}
	*s = Settings(v.settingsAlias)
	s.ReaskCooldown, s.Retention = time.Duration(rc), time.Duration(rt)
	return nil
}

// jsonDuration is a time.Duration written as a Go duration string.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("duration %q: want a Go duration such as \"720h\"", clip(str))
		}
		*d = jsonDuration(v)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: want a Go duration string such as \"720h\"", clip(string(b)))
	}
	*d = jsonDuration(n)
	return nil
}
