package slack

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/ndrbot/ndrbot/commands"
)

// Block Kit limits (Slack does not trim; slack-go does not validate).
const (
	maxBlocks     = 50
	maxText       = 3000
	maxHeader     = 150
	maxFields     = 10
	maxFieldText  = 2000
	maxContextEls = 10
)

// Rendered is one Slack message: fallback text (notifications, screen readers),
// Block Kit blocks, and the files to upload with it when content did not fit.
type Rendered struct {
	Text   string          `json:"text"`
	Blocks []slackgo.Block `json:"blocks"`
	Files  []File          `json:"files,omitempty"`
}

// UnmarshalJSON reads a Rendered back (an outbox may store it as JSON): blocks
// are decoded into their concrete Block Kit types.
func (r *Rendered) UnmarshalJSON(b []byte) error {
	var v struct {
		Text   string         `json:"text"`
		Blocks slackgo.Blocks `json:"blocks"`
		Files  []File         `json:"files"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Rendered{Text: v.Text, Blocks: v.Blocks.BlockSet, Files: v.Files}
	return nil
}

// File is full text that did not fit into the message; Poster.Deliver uploads it
// into the message's thread and the message says so.
type File struct {
	Name    string `json:"name"`
	Title   string `json:"title,omitempty"`
	Content string `json:"content"`
}

// Renderer turns commands.Message views into Block Kit. Now is the clock used for
// "expires in N min" (nil: time.Now).
type Renderer struct {
	Now func() time.Time
}

// Render renders m with the wall clock.
func Render(m commands.Message) (Rendered, error) { return Renderer{}.Render(m) }

// Render renders m; exactly one view of m must be set. The result always respects
// Block Kit's limits: what does not fit goes into Files, and the message says so.
func (r Renderer) Render(m commands.Message) (Rendered, error) {
	set := 0
	for _, v := range []bool{m.Root != nil, m.Findings != nil, m.Approval != nil, m.Escalation != nil, m.Alert != nil, m.Notice != nil, m.Choice != nil} {
		if v {
			set++
		}
	}
	if set != 1 {
		return Rendered{}, fmt.Errorf("render %s/%s: want exactly one view, got %d", m.RunID, m.Key, set)
	}
	b := &builder{prefix: fileSafe(strings.Trim(m.RunID+"-"+m.Key, "-"))}
	switch {
	case m.Root != nil:
		r.root(b, m.Root)
	case m.Findings != nil:
		r.findings(b, m.Findings)
	case m.Approval != nil:
		r.approval(b, m.Approval)
	case m.Escalation != nil:
		r.escalation(b, m.Escalation)
	case m.Alert != nil:
		r.alert(b, m.Alert)
	case m.Notice != nil:
		r.notice(b, m.Notice)
	case m.Choice != nil:
		r.choice(b, m.Choice)
	}
	out := Rendered{Text: b.text, Blocks: b.blocks, Files: b.files}
	if err := checkLimits(out); err != nil {
		return Rendered{}, fmt.Errorf("render %s/%s: %w", m.RunID, m.Key, err)
	}
	return out, nil
}

// alert renders an NDR watch alert: the headline, the busiest domains, a sample
// status line, the playbook, and the Run diagnosis button (action_id
// "run-diagnosis", value the code the playbook is started with) until a responder
// starts the diagnosis.
func (r Renderer) alert(b *builder, v *commands.AlertView) {
	headline := v.Headline()
	if full, cut := b.header(":rotating_light: " + headline); cut {
		b.section("*" + escape(full) + "*")
	}
	span := ""
	if !v.First.IsZero() && !v.Last.IsZero() {
		span = fmt.Sprintf(" between %s and %s", clock(v.First), clock(v.Last))
	}
	b.section(fmt.Sprintf("*%d* NDRs with status %s arrived in %s%s (threshold %d in %s).",
		v.Messages, code(v.Code), code(v.Mailbox), span, v.Threshold, escape(durationWords(v.Window))))
	if len(v.TopDomains) > 0 {
		items := make([]item, 0, len(v.TopDomains))
		for _, d := range v.TopDomains {
			items = append(items, item{md: fmt.Sprintf("• %s — %d", code(d.Domain), d.Messages), plain: fmt.Sprintf("%s %d", d.Domain, d.Messages)})
		}
		title := "*Busiest remote domains*"
		if v.Domains > len(v.TopDomains) {
			title += fmt.Sprintf(" (top %d of %d)", len(v.TopDomains), v.Domains)
		}
		b.list(title, items, 1, "domains", "Remote domains")
	}
	if v.Sample != "" {
		b.section(b.longCode("*Sample*", v.Sample, 500, 4, "sample", "Sample status line"))
	}
	var fs []field
	if v.Playbook != "" {
		pb := code(v.Playbook)
		if v.PlaybookTitle != "" {
			pb += " — " + escape(v.PlaybookTitle)
		}
		fs = append(fs, field{"Playbook", pb})
	}
	if !v.DiagnosisBy.IsZero() {
		fs = append(fs, field{"Diagnosis", "started by " + mention(v.DiagnosisBy) + " at " + clock(v.DiagnosisAt)})
	}
	if len(fs) > 0 {
		b.fields(fs)
	}
	if v.Hint != "" && v.Button == "" {
		b.section(":information_source: " + escape(v.Hint))
	}
	if v.Button != "" && v.DiagnosisBy.IsZero() {
		label := "Run diagnosis"
		confirm := "Start " + v.Playbook + " for " + v.Button + " in this channel."
		btn := slackgo.NewButtonBlockElement(commands.ActionRunDiagnosis, v.Button, plainText(label)).
			WithStyle(slackgo.StylePrimary).
			WithConfirm(slackgo.NewConfirmationBlockObject(plainText("Run the diagnosis?"), plainText(cutRunes(confirm, 300)),
				plainText(label), plainText("Cancel")))
		b.blocks = append(b.blocks, slackgo.NewActionBlock("watch-alert", btn))
	}
	alertRef := ""
	if v.AlertID != "" {
		alertRef = "alert " + code(v.AlertID)
	}
	b.context("NDR watch · one alert per code per cooldown", alertRef)
	b.text = escape(headline)
}

// notice renders a message the watch posts about itself.
func (r Renderer) notice(b *builder, v *commands.NoticeView) {
	icon := ":information_source:"
	switch v.Severity {
	case "critical":
		icon = ":rotating_light:"
	case "warning":
		icon = ":warning:"
	}
	if full, cut := b.header(icon + " " + v.Title); cut {
		b.section("*" + escape(full) + "*")
	}
	if v.Text != "" {
		b.section(escape(v.Text))
	}
	at := ""
	if !v.At.IsZero() {
		at = clock(v.At)
	}
	b.context("NDR watch", at)
	b.text = escape(v.Title)
}

// durationWords is "5 min", "2 h" or Go's form for odd durations.
func durationWords(d time.Duration) string {
	switch {
	case d >= 2*time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return d.String()
}

func (r Renderer) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// builder collects blocks and files for one message.
type builder struct {
	prefix string
	text   string
	blocks []slackgo.Block
	files  []File
}

func mdText(s string) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.MarkdownType, s, false, true)
}

func plainText(s string) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.PlainTextType, s, true, false)
}

// attach adds a file and returns its name.
func (b *builder) attach(suffix, title, content string) string {
	name := b.prefix + "-" + fileSafe(suffix) + ".txt"
	for _, f := range b.files {
		if f.Name == name {
			return name
		}
	}
	b.files = append(b.files, File{Name: name, Title: title, Content: content})
	return name
}

func attachedNote(name string) string {
	return "_… full output attached as " + code(name) + "_"
}

// header adds a header block; a title longer than Slack allows is cut with "…"
// and returned whole for the caller to show in full.
func (b *builder) header(title string) (full string, cut bool) {
	if runes(title) <= maxHeader {
		b.blocks = append(b.blocks, slackgo.NewHeaderBlock(plainText(title)))
		return title, false
	}
	b.blocks = append(b.blocks, slackgo.NewHeaderBlock(plainText(cutRunes(title, maxHeader-1)+"…")))
	return title, true
}

// section adds a mrkdwn section. md is already encoded; an oversize one (a bug in
// a caller) is still never cut silently: it is attached whole.
func (b *builder) section(md string) {
	if runes(md) > maxText {
		name := b.attach(fmt.Sprintf("section-%d", len(b.blocks)), "Full text", md)
		note := "\n" + attachedNote(name)
		md, _ = excerpt(md, maxText-runes(note), func(s string) string { return s })
		md += note
	}
	b.blocks = append(b.blocks, slackgo.NewSectionBlock(mdText(md), nil, nil))
}

// field is one label/value of a fields section; value is encoded mrkdwn.
type field struct{ label, value string }

// fields adds sections of at most ten fields.
func (b *builder) fields(fs []field) {
	for len(fs) > 0 {
		n := min(len(fs), maxFields)
		objs := make([]*slackgo.TextBlockObject, 0, n)
		for _, f := range fs[:n] {
			v := "*" + f.label + "*\n" + f.value
			if runes(v) > maxFieldText {
				name := b.attach("field-"+f.label, f.label, f.value)
				note := "\n" + attachedNote(name)
				v, _ = excerpt(v, maxFieldText-runes(note), func(s string) string { return s })
				v += note
			}
			objs = append(objs, mdText(v))
		}
		b.blocks = append(b.blocks, slackgo.NewSectionBlock(nil, objs, nil))
		fs = fs[n:]
	}
}

func (b *builder) context(parts ...string) {
	els := make([]slackgo.MixedElement, 0, len(parts))
	for _, p := range parts[:min(len(parts), maxContextEls)] {
		if p != "" {
			els = append(els, mdText(p))
		}
	}
	if len(els) > 0 {
		b.blocks = append(b.blocks, slackgo.NewContextBlock("", els...))
	}
}

// item is one line of a list: its mrkdwn and its plain-text form for the file.
type item struct {
	md, plain string
	clipped   bool // md shows an excerpt: the full plain text belongs in a file
}

// list adds title and items as sections of at most maxText runes, using at most
// maxSections blocks. Items that do not fit, or that show only an excerpt, are
// written in full to one attached file, and the last section says so.
func (b *builder) list(title string, items []item, maxSections int, fileSuffix, fileTitle string) {
	const reserve = 200 // room for the "attached" note in the last section
	var full strings.Builder
	attachAll := false
	for _, it := range items {
		full.WriteString(it.plain)
		full.WriteString("\n")
		attachAll = attachAll || it.clipped
	}
	var sections []string
	cur := title
	shown := 0
	for _, it := range items {
		md := it.md
		if runes(md) > maxText-reserve-runes(title)-1 {
			md, _ = excerpt(md, maxText-reserve-runes(title)-1, func(s string) string { return s })
			attachAll = true
		}
		if runes(cur)+1+runes(md) > maxText-reserve {
			if len(sections)+1 == maxSections {
				break
			}
			sections = append(sections, cur)
			cur = ""
		}
		if cur != "" {
			cur += "\n"
		}
		cur += md
		shown++
	}
	if rest := len(items) - shown; rest > 0 || attachAll {
		name := b.attach(fileSuffix, fileTitle, full.String())
		if rest > 0 {
			cur += fmt.Sprintf("\n_… and %d more — full list attached as %s_", rest, code(name))
		} else {
			cur += "\n_Excerpts shown — full text attached as " + code(name) + "_"
		}
	}
	sections = append(sections, cur)
	for _, s := range sections {
		if s != "" {
			b.section(s)
		}
	}
}

// longCode is a labelled ``` block of raw, excerpted to limit runes and at most
// maxLines lines; the full text is attached when cut.
func (b *builder) longCode(label, raw string, limit, maxLines int, fileSuffix, fileTitle string) string {
	enc, clipped := excerptLines(raw, limit, maxLines, escapeCode)
	md := label + "\n" + codeBlock(enc)
	if clipped {
		md += "\n" + attachedNote(b.attach(fileSuffix, fileTitle, raw))
	}
	return md
}

// checkLimits verifies every Block Kit limit on r; a failure is a renderer bug.
func checkLimits(r Rendered) error {
	if len(r.Blocks) > maxBlocks {
		return fmt.Errorf("%d blocks, Slack allows %d", len(r.Blocks), maxBlocks)
	}
	var errs []error
	text := func(where string, t *slackgo.TextBlockObject, limit int) {
		if t != nil && runes(t.Text) > limit {
			errs = append(errs, fmt.Errorf("%s: %d characters, Slack allows %d", where, runes(t.Text), limit))
		}
		if t != nil && t.Text == "" {
			errs = append(errs, fmt.Errorf("%s: empty text", where))
		}
	}
	for i, blk := range r.Blocks {
		where := fmt.Sprintf("block %d", i)
		switch v := blk.(type) {
		case *slackgo.HeaderBlock:
			text(where+" header", v.Text, maxHeader)
		case *slackgo.SectionBlock:
			text(where+" section", v.Text, maxText)
			if len(v.Fields) > maxFields {
				errs = append(errs, fmt.Errorf("%s: %d fields, Slack allows %d", where, len(v.Fields), maxFields))
			}
			for j, f := range v.Fields {
				text(fmt.Sprintf("%s field %d", where, j), f, maxFieldText)
			}
		case *slackgo.ContextBlock:
			if len(v.ContextElements.Elements) > maxContextEls {
				errs = append(errs, fmt.Errorf("%s: too many context elements", where))
			}
			for _, el := range v.ContextElements.Elements {
				if t, ok := el.(*slackgo.TextBlockObject); ok {
					text(where+" context", t, maxText)
				}
			}
		}
	}
	return errors.Join(errs...)
}
