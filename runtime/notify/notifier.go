package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of [Config].
const (
	DefaultBackoff     = 2 * time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultMaxAttempts = 8
	DefaultQueue       = 256
	DefaultTimeout     = 30 * time.Second
	// JournalFile is the journal's usual name in the state directory.
	JournalFile = "notifications.jsonl"
)

// Config configures a [Notifier]. A channel is on when its address is set;
// with neither, Notify only journals.
type Config struct {
	// WebhookURL receives each event as a signed JSON POST; "" is off.
	WebhookURL string
	// Key signs the webhook; required with WebhookURL.
	Key *Key
	// SMTP is the mail channel; off when SMTP.Addr is "".
	SMTP SMTPConfig
	// Journal is the path of the JSON-lines record of every delivery's
	// outcome; "" keeps none.
	Journal string
	// Backoff is the wait after a first failed attempt, doubling up to
	// MaxBackoff; MaxAttempts bounds the attempts per event and channel.
	// Zero values mean the defaults.
	Backoff, MaxBackoff time.Duration
	MaxAttempts         int
	// Queue is how many events may wait per channel; more are dropped.
	Queue int
	// Timeout bounds one attempt.
	Timeout time.Duration
	// HTTPClient sends the webhook; nil means a client with Timeout.
	HTTPClient *http.Client
	// Logger receives failures and drops (never a secret); nil discards.
	Logger *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// SMTPConfig is the mail relay. Password is a secret: it never appears in
// a log, the journal or an error.
type SMTPConfig struct {
	Addr     string   // host:port of the relay
	From     string   // envelope and header sender
	To       []string // recipients
	Username string   // PLAIN authentication when set
	Password Secret
}

// Secret is a string that redacts itself in fmt, slog and JSON.
type Secret string

// String redacts.
func (Secret) String() string { return "<redacted>" }

// GoString redacts.
func (Secret) GoString() string { return "<redacted>" }

// LogValue redacts.
func (Secret) LogValue() slog.Value { return slog.StringValue("<redacted>") }

// MarshalText redacts.
func (Secret) MarshalText() ([]byte, error) { return []byte("<redacted>"), nil }

// Validate reports what is missing, naming the configuration keys.
func (c *Config) Validate() error {
	var errs []error
	if c.WebhookURL != "" && c.Key == nil {
		errs = append(errs, errors.New("notify.webhook.url: no signing key"))
	}
	if c.SMTP.Addr != "" {
		if c.SMTP.From == "" {
			errs = append(errs, errors.New("notify.smtp.from: required with notify.smtp.addr"))
		}
		if len(c.SMTP.To) == 0 {
			errs = append(errs, errors.New("notify.smtp.to: required with notify.smtp.addr"))
		}
	}
	return errors.Join(errs...)
}

// Stats count deliveries since New, over every channel.
type Stats struct {
	Delivered, Failed, Dropped, Retries int64
}

// Notifier delivers events; see the package doc. Notify may be called
// from any goroutine; Close once, at the end.
type Notifier struct {
	cfg      Config
	log      *slog.Logger
	channels []*channel
	journal  *journal

	delivered, failed, dropped, retries atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// channel is one way out with its own queue and goroutine.
type channel struct {
	name  string
	send  func(ctx context.Context, ev *Event) error
	queue chan *Event
}

// New starts a Notifier's delivery goroutines.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.Timeout}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg, log: log}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if cfg.Journal != "" {
		j, err := openJournal(cfg.Journal)
		if err != nil {
			return nil, err
		}
		n.journal = j
	}
	if cfg.WebhookURL != "" {
		n.channels = append(n.channels, &channel{name: "webhook", send: n.sendWebhook})
	}
	if cfg.SMTP.Addr != "" {
		n.channels = append(n.channels, &channel{name: "smtp", send: n.sendMail})
	}
	for _, ch := range n.channels {
		ch.queue = make(chan *Event, cfg.Queue)
		n.wg.Go(func() { n.deliver(ch) })
	}
	return n, nil
}

// Enabled reports whether any channel is configured.
func (n *Notifier) Enabled() bool { return n != nil && len(n.channels) > 0 }

// Notify queues ev on every channel and returns at once. It fills in ID
// and Time when they are empty. A nil Notifier drops it.
func (n *Notifier) Notify(ev Event) {
	if n == nil {
		return
	}
	if ev.ID == "" {
		ev.ID = newID()
	}
	if ev.Time.IsZero() {
		ev.Time = n.cfg.Now().UTC()
	}
	for _, ch := range n.channels {
		select {
		case ch.queue <- &ev:
		default:
			n.dropped.Add(1)
			n.log.Warn("notification dropped: the queue is full", "channel", ch.name, "event", ev.Kind, "playbook", ev.Playbook, "run", ev.Run)
			n.record(ch.name, &ev, 0, "dropped", errors.New("queue full"))
		}
	}
}

// Stats returns the counts so far.
func (n *Notifier) Stats() Stats {
	return Stats{Delivered: n.delivered.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load(), Retries: n.retries.Load()}
}

// Close delivers what is queued until ctx ends, then abandons the rest
// (journaled as abandoned) and closes the journal.
func (n *Notifier) Close(ctx context.Context) error {
	if n == nil {
		return nil
	}
	for _, ch := range n.channels {
		close(ch.queue)
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel()
		<-done
	}
	n.cancel()
	if n.journal != nil {
		return n.journal.close()
	}
	return nil
}

// deliver sends ch's events in order, each with its retries.
func (n *Notifier) deliver(ch *channel) {
	for ev := range ch.queue {
		n.deliverOne(ch, ev)
	}
}

func (n *Notifier) deliverOne(ch *channel, ev *Event) {
	wait := n.cfg.Backoff
	var err error
	for attempt := 1; attempt <= n.cfg.MaxAttempts; attempt++ {
		if n.ctx.Err() != nil {
			n.failed.Add(1)
			n.record(ch.name, ev, attempt-1, "abandoned", errors.New("the agent stopped"))
			return
		}
		actx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
		err = ch.send(actx, ev)
		cancel()
		if err == nil {
			n.delivered.Add(1)
			n.record(ch.name, ev, attempt, "delivered", nil)
			return
		}
		if attempt == n.cfg.MaxAttempts {
			break
		}
		n.retries.Add(1)
		n.log.Warn("notification failed; retrying", "channel", ch.name, "event", ev.Kind, "run", ev.Run, "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, n.cfg.MaxBackoff)
	}
	n.failed.Add(1)
	n.log.Error("notification failed for good", "channel", ch.name, "event", ev.Kind, "run", ev.Run, "attempts", n.cfg.MaxAttempts, "err", err)
	n.record(ch.name, ev, n.cfg.MaxAttempts, "failed", err)
}

// record writes one delivery outcome to the journal.
func (n *Notifier) record(channel string, ev *Event, attempts int, result string, err error) {
	if n.journal == nil {
		return
	}
	e := journalEntry{Time: n.cfg.Now().UTC(), Channel: channel, Event: ev.ID, Kind: ev.Kind, Playbook: ev.Playbook,
		Run: ev.Run, Attempts: attempts, Result: result}
	if err != nil {
		e.Error = err.Error()
	}
	if werr := n.journal.write(e); werr != nil {
		n.log.Error("writing the notification journal failed", "err", werr)
	}
}

// journalEntry is one line of the journal.
type journalEntry struct {
	Time     time.Time `json:"time"`
	Channel  string    `json:"channel"`
	Event    string    `json:"event_id"`
	Kind     string    `json:"event"`
	Playbook string    `json:"playbook"`
	Run      string    `json:"run,omitempty"`
	Attempts int       `json:"attempts"`
	Result   string    `json:"result"` // delivered, failed, dropped, abandoned
	Error    string    `json:"error,omitempty"`
}

// journal is the append-only JSON-lines record.
type journal struct {
	mu sync.Mutex
	f  *os.File
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("notify: journal: %w", err)
	}
	return &journal{f: f}, nil
}

func (j *journal) write(e journalEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_, err = j.f.Write(append(b, '\n'))
	return err
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return "n-" + hex.EncodeToString(b[:])
}
