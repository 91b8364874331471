package builtins

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// RenderDoc writes the playbook reference for tables to w, in format
// "text" (for a terminal: `felhom-agent doc`) or "markdown". Global
// functions (Tables with an empty Name) come first in one section, then
// one section per module in the order given, each member in its Table's
// order. The output depends only on the tables, so it can be compared
// with a golden file.
func RenderDoc(w io.Writer, tables []*Table, format string) error {
	var r docRenderer
	switch format {
	case "text":
		r = textDoc{}
	case "markdown":
		r = markdownDoc{}
	default:
		return fmt.Errorf("doc: unknown format %q (want \"text\" or \"markdown\")", format)
	}
	bw := bufio.NewWriter(w)
	r.title(bw)

	var globals []*Table
	for _, t := range tables {
		if t.Name == "" {
			globals = append(globals, t)
		}
	}
	if len(globals) > 0 {
		r.section(bw, "Global functions", "")
		for _, t := range globals {
			r.paragraph(bw, t.Doc)
		}
		for _, t := range globals {
			renderMembers(bw, r, t, "")
		}
	}
	for _, t := range tables {
		if t.Name == "" {
			continue
		}
		r.section(bw, "Module "+t.Name, t.Name)
		r.paragraph(bw, t.Doc)
		renderMembers(bw, r, t, t.Name+".")
	}
	return bw.Flush()
}

func renderMembers(w io.Writer, r docRenderer, t *Table, prefix string) {
	for _, f := range t.Funcs {
		r.member(w, prefix+f.Sig, f.Doc+effectNote(t, &f))
	}
	for _, a := range t.Attrs {
		r.member(w, prefix+a.Name, a.Doc)
	}
}

// docRenderer is one output format. Sections and members are written in
// order; every call ends its output with a blank line.
type docRenderer interface {
	title(w io.Writer)
	section(w io.Writer, heading, anchor string)
	paragraph(w io.Writer, text string)
	member(w io.Writer, sig, doc string)
}

type textDoc struct{}

func (textDoc) title(w io.Writer) {
	fmt.Fprint(w, "FELHOM-AGENT PLAYBOOK REFERENCE\n\n")
}

func (textDoc) section(w io.Writer, heading, _ string) {
	fmt.Fprintf(w, "%s\n%s\n\n", heading, strings.Repeat("=", len(heading)))
}

func (textDoc) paragraph(w io.Writer, text string) {
	if text = strings.TrimSpace(text); text != "" {
		fmt.Fprintf(w, "%s\n\n", text)
	}
}

func (textDoc) member(w io.Writer, sig, doc string) {
	fmt.Fprintf(w, "%s\n", sig)
	for line := range strings.Lines(strings.TrimSpace(doc)) {
		if line = strings.TrimRight(line, "\n"); line == "" {
			fmt.Fprintln(w)
		} else {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
	fmt.Fprintln(w)
}

type markdownDoc struct{}

func (markdownDoc) title(w io.Writer) {
	fmt.Fprint(w, "# Playbook reference\n\n")
}

func (markdownDoc) section(w io.Writer, heading, anchor string) {
	if anchor != "" {
		fmt.Fprintf(w, "## Module `%s`\n\n", anchor)
		return
	}
	fmt.Fprintf(w, "## %s\n\n", heading)
}

func (markdownDoc) paragraph(w io.Writer, text string) {
	if text = strings.TrimSpace(text); text != "" {
		fmt.Fprintf(w, "%s\n\n", text)
	}
}

func (markdownDoc) member(w io.Writer, sig, doc string) {
	fmt.Fprintf(w, "### `%s`\n\n", sig)
	// Indented continuation lines (field lists in a doc) are kept as a
	// code block so their alignment survives.
	var block []string
	flush := func() {
		if len(block) > 0 {
			fmt.Fprintf(w, "```\n%s\n```\n\n", strings.Join(block, "\n"))
			block = nil
		}
	}
	for line := range strings.Lines(strings.TrimSpace(doc)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "  "):
			block = append(block, strings.TrimPrefix(line, "  "))
		case line == "":
			flush()
		default:
			flush()
			fmt.Fprintf(w, "%s\n\n", line)
		}
	}
	flush()
}

// effectNote is the safety gate's word on a builtin that changes the host,
// appended to its doc; "" for one that reads.
func effectNote(t *Table, f *Func) string {
	switch t.EffectOf(f) {
	case Benign:
		return "\nSafety gate: benign (never needs a signature)."
	case Gated:
		return "\nSafety gate: destructive, needing an operator's signature (docs/safety.md), " + f.Destructive + "; benign otherwise."
	}
	return ""
}

// RenderEffects writes the safety gate's table of every builtin — name,
// effect and when it is destructive — as markdown rows, for
// docs/safety.md.
func RenderEffects(w io.Writer, tables []*Table) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "| builtin | effect | destructive when |")
	fmt.Fprintln(bw, "|---|---|---|")
	for _, t := range tables {
		for i := range t.Funcs {
			f := &t.Funcs[i]
			when := f.Destructive
			if when == "" {
				when = "never"
			}
			fmt.Fprintf(bw, "| `%s` | %s | %s |\n", qualified(t.Name, f.Name), t.EffectOf(f), when)
		}
	}
	return bw.Flush()
}
