package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"
)

// table prints rows under a header, columns two spaces apart. Unless wide,
// only the columns marked narrow are shown, and when the output is a
// terminal the last column shown is cut (with "…") so that lines fit its
// width.
type table struct {
	header []string
	narrow []bool // per column: shown without --wide
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer, wide bool) error {
	var cols []int
	for i := range t.header {
		if wide || t.narrow[i] {
			cols = append(cols, i)
		}
	}
	width := make([]int, len(cols))
	for j, c := range cols {
		width[j] = utf8.RuneCountInString(t.header[c])
		for _, r := range t.rows {
			width[j] = max(width[j], utf8.RuneCountInString(r[c]))
		}
	}
	limit := 0
	if !wide {
		limit = terminalWidth(w)
	}
	var b strings.Builder
	line := func(cells []string) {
		var l strings.Builder
		for j, c := range cols {
			cell := cells[c]
			if j < len(cols)-1 {
				cell += strings.Repeat(" ", width[j]-utf8.RuneCountInString(cell)+2)
			}
			l.WriteString(cell)
		}
		s := strings.TrimRight(l.String(), " ")
		if limit > 0 && utf8.RuneCountInString(s) > limit {
			s = string([]rune(s)[:limit-1]) + "…"
		}
		b.WriteString(s + "\n")
	}
	line(t.header)
	for _, r := range t.rows {
		line(r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// terminalWidth is w's width when it is a terminal, else 0 (no limit).
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil || cols < 20 {
		return 0
	}
	return cols
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
