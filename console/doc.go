// Package console is recguard's admin console: a single-page web app,
// embedded in the binary, that `recguard serve` serves at /console (no
// key needed for the page itself: it holds no data).
//
// The console signs in with an API key, kept in the browser's session
// storage only and sent only in the Authorization header of the /v1 calls
// it makes; it learns the key's role by trying one cheap route per role
// and shows the pages that role may use:
//
//   - admin: settings (with a diff preview, and a confirmation before a
//     change that loosens a consent rule), the Art. 51 kill switch (a typed
//     confirmation and a reason), the audience builder (segment with inline
//     parse errors, live count, a sample page), the Art. 44 rights report
//     (chart, CSV), the settings and admin history;
//   - app: the user lookup for support staff (consent, tags, receipts and
//     the actions a user may ask for);
//   - auditor: audits (start, list, the HTML report), the enforcement
//     audit and the store verification.
//
// Every page is available in Simplified Chinese and English. The assets
// are plain hand-written HTML, CSS and JavaScript modules (no build step,
// no external asset); Handler serves them with a strict Content Security
// Policy. See docs/console.md.
package console
