package tags_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/recguard/recguard/tags"
)

func ExampleParse() {
	t, err := tags.Parse("interest:ski")
	fmt.Println(t, t.Namespace(), t.Value(), err)

	// Variants in case and spacing are the same tag.
	t, err = tags.Parse(" Interest : Ski ")
	fmt.Println(t, err)

	_, err = tags.Parse("interest:ski!")
	fmt.Println(errors.Is(err, tags.ErrInvalidTag))
	// Output:
	// interest:ski interest ski <nil>
	// interest:ski <nil>
	// true
}

func ExampleSet_Delete() {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ski := tags.MustParse("interest:ski")

	var s tags.Set
	s, _ = s.Add(ski, tags.Inferred, false, at)
	s = s.Delete(ski, at.Add(time.Hour)) // the user deletes the tag

	// The inference pipeline cannot write it back.
	_, err := s.Add(ski, tags.Inferred, false, at.Add(2*time.Hour))
	fmt.Println(errors.Is(err, tags.ErrSuppressed))

	// Only the user's own declaration lifts the suppression.
	s, err = s.Add(ski, tags.Declared, true, at.Add(3*time.Hour))
	e, ok := s.Has(ski)
	fmt.Println(err, ok, e.Source, s.IsSuppressed(ski))
	// Output:
	// true
	// <nil> true declared false
}

func ExampleSet_Add() {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var s tags.Set
	s, _ = s.Add(tags.MustParse("region:sh"), tags.Inferred, false, at)
	s, _ = s.Add(tags.MustParse("interest:ski"), tags.Declared, true, at)
	// An inference never downgrades a declared tag.
	s, _ = s.Add(tags.MustParse("interest:ski"), tags.Inferred, false, at)
	for _, e := range s.Entries {
		fmt.Println(e.Tag, e.Source)
	}
	// Output:
	// interest:ski declared
	// region:sh inferred
}
