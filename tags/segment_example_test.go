package tags_test

import (
	"errors"
	"fmt"

	"github.com/recguard/recguard/tags"
)

func ExampleParseSegment() {
	seg, err := tags.ParseSegment("(interest:ski|interest:snowboard) & !refused:push&!consent:personalization_off")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(seg)
	fmt.Println(seg.Atoms())
	fmt.Println(seg.UsesPersonalData())

	// Precedence: ! binds tightest, then &, then |.
	fmt.Println(tags.MustParseSegment("(a:x | (b:y & (!c:z)))"))
	// Output:
	// (interest:ski | interest:snowboard) & !refused:push & !consent:personalization_off
	// [interest:ski interest:snowboard refused:push consent:personalization_off]
	// true
	// a:x | b:y & !c:z
}

func ExampleSegment_Eval() {
	seg := tags.MustParseSegment("interest:ski & !refused:push & !consent:personalization_off")

	// The oracle answers for one user: here a skier who turned
	// personalization off.
	user := map[tags.Atom]bool{
		{Kind: tags.AtomTag, Tag: "interest:ski"}: true,
		{Kind: tags.AtomPersonalizationOff}:       true,
	}
	fmt.Println(seg.Eval(func(a tags.Atom) bool { return user[a] }))
	// Output:
	// false
}

func ExampleSyntaxError() {
	_, err := tags.ParseSegment("(a:x | b:y) & ()")
	fmt.Println(err)

	var se *tags.SyntaxError
	if errors.As(err, &se) {
		fmt.Printf("%s\n%*s^\n", se.Input, se.Pos, "")
	}
	fmt.Println(errors.Is(err, tags.ErrInvalidSegment))

	_, err = tags.ParseSegment("interest:ski & refused:Push")
	fmt.Println(err)
	// Output:
	// tags: invalid segment expression at 15: expected tag, flag, "*", "!" or "(", found ")"
	// (a:x | b:y) & ()
	//                ^
	// true
	// tags: invalid segment expression at 23: expected channel name starting with a lowercase letter, found "P"
}

func ExampleReservedNamespaces() {
	fmt.Println(tags.ReservedNamespaces())
	_, err := tags.Parse("consent:yes")
	fmt.Println(err)
	// Output:
	// [consent refused sensitive]
	// tags: invalid tag "consent:yes": namespace "consent" is reserved for segment flags
}
