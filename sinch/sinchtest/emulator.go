// Package sinchtest is an in-memory emulator of the Sinch Conversation API
// contacts endpoints and its OAuth2 token endpoint. It is an http.Handler:
// tests run it under httptest (see Start), the CLI under an http.Server.
//
// It enforces what the real API enforces (see /work/shared/sinch/README.md):
// routes under /v1/projects/{project_id}, Basic or bearer auth (JWT access
// tokens with exp, and the 401 that says a token expired), page_size
// defaults and caps, opaque page tokens, required fields, update_mask and
// merge semantics, Sinch's error body, identities stored and matched without
// the '+' of a number, 403 for a key used on another project, the token
// endpoint's small rate limit. It counts requests per operation and can
// inject latency, 429s with Retry-After or a google.rpc.RetryInfo detail,
// 5xx, dropped connections, slow answers and a server-side rate limit, into
// the contacts endpoints and the token endpoint apart; it can also end lists
// with an empty page (or shift its pages, as Sinch's tokens do) and play the
// project setting unified_contact_id_enabled. Its apps (apps.go) have a
// processing mode, which the Apps API reads and sets, and which decides
// whether an inbound message joins a contact.
package sinchtest

import (
	"cmp"
	"crypto/rand"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/time/rate"

	"github.com/syncd/syncd/sinch"
)

// Operations counted by the emulator. OpOther counts requests that match no
// endpoint.
const (
	OpList   = sinch.OpList
	OpGet    = sinch.OpGet
	OpCreate = sinch.OpCreate
	OpUpdate = sinch.OpUpdate
	OpDelete = sinch.OpDelete
	OpMerge  = sinch.OpMerge
	OpToken  = sinch.OpToken
	OpOther  = "other"
)

// Defaults for Options left empty.
const (
	DefaultProjectID = "emulated-project"
	DefaultKeyID     = "emulated-key-id"
	DefaultKeySecret = "emulated-key-secret"
	DefaultTokenTTL  = time.Hour
)

// The token endpoint's own rate limit, as Sinch runs it: a token bucket of
// about 30 at once, refilled at 10 a second, whose 429s carry no
// Retry-After (sinch/README.md, and the Node SDK's comments on it).
const (
	TokenRateLimitRPS   = 10
	TokenRateLimitBurst = 30
)

// Options configure an Emulator.
type Options struct {
	ProjectID, KeyID, KeySecret string
	// TokenTTL is the lifetime of the bearer tokens it issues; default 1h.
	TokenTTL time.Duration
	Faults   Faults
	// TokenFaults are injected into the token endpoint, apart from Faults.
	// Its rate limit is Sinch's, a bucket of RateLimitBurst (default
	// TokenRateLimitBurst) refilled at RateLimitRPS (default
	// TokenRateLimitRPS); a negative RateLimitRPS turns it off. Its 429s
	// never carry Retry-After, as Sinch's do not.
	TokenFaults Faults
	// UnifiedContactID plays the project setting unified_contact_id_enabled
	// (projectsettings/ContactSettingsDto.json): when a create, an update or
	// a merge brings a contact a phone number, Sinch adds the SMS, MMS and
	// RCS identities of that number it lacks, at the end.
	UnifiedContactID bool
	// EmptyLastPage ends every list that found contacts with a page token
	// whose page is empty and has none, as the Java SDK's fixture
	// ContactListResponseDtoPage1.json shows Sinch doing.
	EmptyLastPage bool
	// ShiftingPages makes page tokens positions in the list, as Sinch's
	// behave: a contact removed from a page already served shifts the rest
	// of the list back, and the next page skips one. Without it a token
	// carries the last id served, and nothing is skipped.
	ShiftingPages bool
	// Clock drives token expiry and contact id timestamps; default
	// time.Now. The server-side rate limit always runs on real time.
	Clock func() time.Time
}

// Faults are injected into an endpoint: Options.Faults into the contacts
// and webhooks endpoints, Options.TokenFaults into the token endpoint.
// Rates are probabilities in [0, 1], drawn from a generator seeded with
// Seed, so a given sequence of requests meets the same faults every run.
type Faults struct {
	Latency, LatencyJitter time.Duration // added before answering
	// RateLimitRPS is a server-side token bucket of RateLimitBurst (0: one
	// second's worth); requests above it get 429 RESOURCE_EXHAUSTED with
	// Retry-After.
	RateLimitRPS        float64
	RateLimitBurst      int
	ErrorRate           float64 // 500 INTERNAL or 503 UNAVAILABLE, nothing applied
	TooManyRequestsRate float64 // 429 RESOURCE_EXHAUSTED, nothing applied
	// RetryAfter is sent with injected 429s, rounded up to whole seconds:
	// 0 means 1s, a negative value sends no header.
	RetryAfter time.Duration
	// RetryInfo sends the wait of every 429 as a google.rpc.RetryInfo
	// detail (retry_delay, the documented form) instead of the Retry-After
	// header, which Sinch does not document.
	RetryInfo bool
	// DropBeforeRate closes the connection without applying the request;
	// DropAfterRate applies it, then closes without answering.
	DropBeforeRate, DropAfterRate float64
	// SlowLoris dribbles each answer over this long.
	SlowLoris time.Duration
	Seed      int64
}

// Emulator is the in-memory Sinch contacts service. Safe for concurrent use.
type Emulator struct {
	projectID, keyID, keySecret string
	tokenTTL                    time.Duration
	now                         func() time.Time

	mu       sync.Mutex
	contacts map[string]sinch.Contact
	// ids are the contact ids in list order (sorted). A removed contact's
	// id stays until a quarter of them are gone (dead counts them), so that
	// a delete does not move a million ids.
	ids  []string
	dead int
	// byExternal and byIdentity index the list filters: contact ids,
	// sorted, by external_id and by channel and stored identity.
	byExternal map[string][]string
	byIdentity map[string][]string
	tokenKey   []byte // signs the access tokens
	calls      map[string]int
	apiDice    dice // the contacts and webhooks endpoints' faults
	tokenDice  dice // the token endpoint's
	entropy    *ulid.MonotonicEntropy
	refuse     func(sinch.Contact) error
	refuseRead func(id string) error
	unified    bool
	emptyLast  bool
	shifting   bool
	hooks      *hooks               // the Webhooks API and its callbacks (webhooks.go)
	apps       map[string]sinch.App // by id (apps.go)
}

// SetUnifiedContactID turns the unified_contact_id_enabled behaviour (see
// Options) on or off; contacts stored already are left as they are.
func (e *Emulator) SetUnifiedContactID(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.unified = on
}

// SetEmptyLastPage turns the trailing empty page of lists (see Options) on
// or off.
func (e *Emulator) SetEmptyLastPage(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.emptyLast = on
}

// unifiedChannels are the channels Sinch fills in for a phone number.
var unifiedChannels = []string{"SMS", "MMS", "RCS"}

// unify adds the identities unified_contact_id_enabled makes Sinch add,
// when it is on: for each phone number the write brings (one that before,
// the contact held on no channel), its SMS, MMS and RCS identities. A number
// the contact already had is left as it is, so an identity removed later is
// not forced back. Callers hold e.mu; both contacts are normalised.
func (e *Emulator) unify(before, after sinch.Contact) sinch.Contact {
	if !e.unified {
		return after
	}
	numbers := func(c sinch.Contact) []string {
		var out []string
		for _, ci := range c.ChannelIdentities {
			if sinch.IsPhoneChannel(ci.Channel) && !slices.Contains(out, ci.Identity) {
				out = append(out, ci.Identity)
			}
		}
		return out
	}
	had := numbers(before)
	for _, n := range numbers(after) {
		if slices.Contains(had, n) {
			continue
		}
		for _, ch := range unifiedChannels {
			if id := (sinch.ChannelIdentity{Channel: ch, Identity: n}); !slices.Contains(after.ChannelIdentities, id) {
				after.ChannelIdentities = append(after.ChannelIdentities, id)
			}
		}
	}
	return after
}

// RefuseWrites makes creates and updates whose resulting contact fails check
// answer 400 INVALID_ARGUMENT with check's message. The real service
// validates more than any client can know in advance (identity formats per
// channel, say); tests use this to make Sinch refuse one contact. nil turns
// it off.
func (e *Emulator) RefuseWrites(check func(sinch.Contact) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refuse = check
}

// RefuseReads makes a GET of a contact id that check refuses answer 400
// INVALID_ARGUMENT with check's message, whether or not the contact
// exists, as Sinch answers an id it finds malformed (its ids are ULIDs).
// Tests use this to make the read of one contact fail for good. nil turns
// it off.
func (e *Emulator) RefuseReads(check func(id string) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refuseRead = check
}

// refused applies the RefuseWrites check; e.mu must be held.
func (e *Emulator) refused(c sinch.Contact) error {
	if e.refuse == nil {
		return nil
	}
	return e.refuse(clone(c))
}

// New builds an Emulator.
func New(opts Options) *Emulator {
	e := &Emulator{
		projectID:  cmp.Or(opts.ProjectID, DefaultProjectID),
		keyID:      cmp.Or(opts.KeyID, DefaultKeyID),
		keySecret:  cmp.Or(opts.KeySecret, DefaultKeySecret),
		tokenTTL:   opts.TokenTTL,
		now:        opts.Clock,
		contacts:   map[string]sinch.Contact{},
		byExternal: map[string][]string{},
		byIdentity: map[string][]string{},
		tokenKey:   make([]byte, 32),
		calls:      map[string]int{},
		entropy:    ulid.Monotonic(rand.Reader, 0),
		unified:    opts.UnifiedContactID,
		emptyLast:  opts.EmptyLastPage,
		shifting:   opts.ShiftingPages,
		hooks:      newHooks(),
	}
	if e.tokenTTL <= 0 {
		e.tokenTTL = DefaultTokenTTL
	}
	if e.now == nil {
		e.now = time.Now
	}
	rand.Read(e.tokenKey)
	e.SetFaults(opts.Faults)
	e.SetTokenFaults(opts.TokenFaults)
	return e
}

// Start serves a new Emulator on a loopback httptest server, closed when the
// test ends.
func Start(tb testing.TB, opts Options) (*Emulator, *httptest.Server) {
	tb.Helper()
	e := New(opts)
	srv := httptest.NewServer(e)
	tb.Cleanup(srv.Close)
	tb.Cleanup(e.Close) // runs first: no callback is sent to a closed server
	return e, srv
}

// ClientConfig returns a client configuration pointing at the emulator
// served at baseURL, with its project and key, and Basic auth, so that
// tests see their own requests only; set Auth to sinch.AuthOAuth2 for
// tokens from the emulator's token endpoint.
func (e *Emulator) ClientConfig(baseURL string) sinch.Config {
	return sinch.Config{
		BaseURL:   baseURL,
		Auth:      sinch.AuthBasic,
		ProjectID: e.projectID,
		KeyID:     e.keyID,
		KeySecret: e.keySecret,
		TokenURL:  baseURL + "/oauth2/token",
	}
}

// SetFaults replaces the faults of the contacts and webhooks endpoints and
// reseeds their generator.
func (e *Emulator) SetFaults(f Faults) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.apiDice = newDice(f)
}

// SetTokenFaults replaces the token endpoint's faults (see
// Options.TokenFaults) and reseeds their generator.
func (e *Emulator) SetTokenFaults(f Faults) {
	switch {
	case f.RateLimitRPS == 0:
		f.RateLimitRPS = TokenRateLimitRPS
	case f.RateLimitRPS < 0:
		f.RateLimitRPS = 0
	}
	f.RateLimitBurst = cmp.Or(f.RateLimitBurst, TokenRateLimitBurst)
	f.RetryAfter = -1
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokenDice = newDice(f)
}

// dice draws the faults of one endpoint, from its own generator, so that
// the requests of one endpoint meet the same faults whatever the other's
// traffic.
type dice struct {
	faults  Faults
	rng     *mrand.Rand
	limiter *rate.Limiter
}

func newDice(f Faults) dice {
	d := dice{faults: f, rng: mrand.New(mrand.NewPCG(uint64(f.Seed), uint64(f.Seed)^0x5ca1ab1e))}
	if f.RateLimitRPS > 0 {
		d.limiter = rate.NewLimiter(rate.Limit(f.RateLimitRPS), cmp.Or(f.RateLimitBurst, max(1, int(f.RateLimitRPS+0.999))))
	}
	return d
}

// Seed stores contacts as a create would (normalised, with a fresh ULID when
// the id is empty) but without validating them, so tests can set up states
// Sinch produces on its own, such as language UNSPECIFIED. It returns the
// stored contacts.
func (e *Emulator) Seed(contacts ...sinch.Contact) []sinch.Contact {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]sinch.Contact, 0, len(contacts))
	for _, c := range contacts {
		c = normalize(c)
		if c.ID == "" {
			c.ID = e.newID()
		}
		e.store(c)
		out = append(out, clone(c))
	}
	return out
}

// Contacts returns a copy of every stored contact, ordered by id.
func (e *Emulator) Contacts() []sinch.Contact {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]sinch.Contact, 0, len(e.contacts))
	for _, id := range e.ids {
		if c, ok := e.contacts[id]; ok {
			out = append(out, clone(c))
		}
	}
	return out
}

// Calls returns how many requests op received, failed ones included.
func (e *Emulator) Calls(op string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[op]
}

// CallCounts returns a copy of the per-operation request counts.
func (e *Emulator) CallCounts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.calls)
}

// ResetCalls zeroes the request counts.
func (e *Emulator) ResetCalls() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.calls)
}

func (e *Emulator) count(op string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls[op]++
}

// newID returns a ULID; ids made in one millisecond still sort in creation
// order. Callers hold e.mu.
func (e *Emulator) newID() string {
	id, err := ulid.New(ulid.Timestamp(e.now()), e.entropy)
	if err != nil {
		// The monotonic entropy ran out within one millisecond.
		return ulid.Make().String()
	}
	return id.String()
}

// store inserts or replaces c. Callers hold e.mu.
func (e *Emulator) store(c sinch.Contact) {
	if old, ok := e.contacts[c.ID]; ok {
		e.unindex(old)
	} else if i, found := slices.BinarySearch(e.ids, c.ID); found {
		e.dead-- // an id removed earlier, still in place
	} else {
		e.ids = slices.Insert(e.ids, i, c.ID)
	}
	e.contacts[c.ID] = c
	e.index(c)
}

// remove deletes a contact. Callers hold e.mu.
func (e *Emulator) remove(id string) {
	c, ok := e.contacts[id]
	if !ok {
		return
	}
	e.unindex(c)
	delete(e.contacts, id)
	if e.dead++; e.dead > len(e.ids)/4 {
		e.ids = slices.DeleteFunc(e.ids, func(id string) bool { _, ok := e.contacts[id]; return !ok })
		e.dead = 0
	}
}

// identityIndexKey keys an identity as stored (contacts are normalised
// before they are stored), so that a look-up matches only the stored form,
// as Sinch's filter is assumed to: a number queried with its '+' finds
// nothing, and a client that sends one is caught.
func identityIndexKey(channel, identity string) string {
	return channel + "\x00" + identity
}

func (e *Emulator) index(c sinch.Contact) {
	if c.ExternalID != "" {
		e.byExternal[c.ExternalID] = insertSorted(e.byExternal[c.ExternalID], c.ID)
	}
	for _, ci := range c.ChannelIdentities {
		k := identityIndexKey(ci.Channel, ci.Identity)
		e.byIdentity[k] = insertSorted(e.byIdentity[k], c.ID)
	}
}

func (e *Emulator) unindex(c sinch.Contact) {
	drop := func(m map[string][]string, k string) {
		if ids := removeSorted(m[k], c.ID); len(ids) > 0 {
			m[k] = ids
		} else {
			delete(m, k)
		}
	}
	if c.ExternalID != "" {
		drop(e.byExternal, c.ExternalID)
	}
	for _, ci := range c.ChannelIdentities {
		drop(e.byIdentity, identityIndexKey(ci.Channel, ci.Identity))
	}
}

func insertSorted(ids []string, id string) []string {
	i, found := slices.BinarySearch(ids, id)
	if found {
		return ids
	}
	return slices.Insert(ids, i, id)
}

func removeSorted(ids []string, id string) []string {
	if i, found := slices.BinarySearch(ids, id); found {
		return slices.Delete(ids, i, i+1)
	}
	return ids
}

func clone(c sinch.Contact) sinch.Contact {
	c.ChannelIdentities = slices.Clone(c.ChannelIdentities)
	c.ChannelPriority = slices.Clone(c.ChannelPriority)
	return c
}

var _ http.Handler = (*Emulator)(nil)
