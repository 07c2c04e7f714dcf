package main

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// writePlot draws one panel per profile (detection p50 against false dead
// verdicts per connection-day, one labelled point per policy, and a line
// per detector family sweeping its knob: the frontier) and one panel of the
// storm's dial attempts per second over time, as an SVG file.
func writePlot(file string, rep *report) error {
	var panels []*panel
	var order []string
	byProfile := map[string][]detectRow{}
	for _, r := range rep.Detect {
		if _, ok := byProfile[r.Profile]; !ok {
			order = append(order, r.Profile)
		}
		byProfile[r.Profile] = append(byProfile[r.Profile], r)
	}
	for _, prof := range order {
		var pts []xy
		var names []string
		maxX, maxY := 0.0, 0.0
		for _, r := range byProfile[prof] {
			if r.DetectionP50 == nil {
				continue // never detected: no finite point
			}
			pts = append(pts, xy{r.FalseDeadsPerConnDay, *r.DetectionP50 / 1000})
			names = append(names, r.Policy)
			maxX, maxY = max(maxX, r.FalseDeadsPerConnDay), max(maxY, *r.DetectionP50/1000)
		}
		// Rates and times cannot be negative: both axes start at 0.
		p := &panel{
			title: prof,
			// Most of the choice lies between 0 and a few false deads a
			// day, and φ and akka reach 30: log(1 + x) keeps 0 and
			// spreads both.
			x: axis{label: "false dead verdicts per connection-day (log(1 + x) scale)", scale: log1pScale, min: 0, max: max(1, maxX*1.5)},
			y: axis{label: "detection time p50 (s)", min: 0, max: max(1, maxY*1.1)},
		}
		p.addFrontiers(rep, prof)
		if len(pts) > 0 {
			p.series = append(p.series, series{pts: pts, color: palette[0], marks: 2.5})
			p.labels = placeLabels(p, pts, names)
		}
		panels = append(panels, p)
	}
	if len(rep.Storm) > 0 {
		p := &panel{
			title: fmt.Sprintf("reconnect storm: %d clients, %g accepts/s", rep.Storm[0].Clients, rep.Storm[0].AcceptPerSec),
			x:     axis{label: fmt.Sprintf("seconds after the restart (the first %d)", int(stormSpan)), min: 0, max: stormSpan},
			// A log scale keeps the advised line, near the accept rate,
			// visible beside storms a hundred times higher.
			y: axis{label: "dial attempts per second (log scale)", scale: logScale, min: 1, max: maxPeak(rep.Storm) * 2},
		}
		var onTop []series
		for i, r := range rep.Storm {
			if len(r.AttemptsPerSec) == 0 {
				continue
			}
			s := series{name: r.Policy, color: palette[i%len(palette)], width: 1}
			for sec, n := range r.AttemptsPerSec {
				// A log scale has no zero: a second without attempts is
				// drawn below the axis, where the line is clipped.
				s.pts = append(s.pts, xy{float64(sec), max(float64(n), 0.1)})
			}
			if r.Advised {
				s.name += " (advised)"
				s.width = 2.5 // the advised line stands out, drawn on top
				onTop = append(onTop, s)
				continue
			}
			p.series = append(p.series, s)
		}
		p.series = append(p.series, onTop...)
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return errors.New("plot: nothing to draw")
	}
	return os.WriteFile(file, []byte(render(panels)), 0o644)
}

// palette has a distinct colour for each line; the advised default is
// drawn first, in black.
var palette = []string{
	"#000000", // black
	"#e69f00", // orange
	"#56b4e9", // sky blue
	"#009e73", // green
	"#cc79a7", // purple
	"#0072b2", // blue
	"#d55e00", // vermilion
	"#f0e442", // yellow
	"#808080", // grey
	"#8c564b", // brown
	"#17becf", // cyan
	"#bcbd22", // olive
}

// stormSpan is how much of the storm the plot shows: the advised and the
// jittered rows are back within a minute; lockstep schedules keep sending
// waves for minutes (their tables give p99).
const stormSpan = 180.0

func maxPeak(rows []stormRow) float64 {
	m := 1
	for _, r := range rows {
		for _, n := range r.AttemptsPerSec {
			m = max(m, n)
		}
	}
	return float64(m)
}

// Each panel is a tileW x tileH px tile; the plotting area inside it is
// panelW x panelH after the margins for title, ticks and axis labels.
// Labels are 11 px text, about charW wide a character and lineH high.
const (
	tileW, tileH                         = 600.0, 530.0
	marginL, marginR, marginT, marginB   = 62.0, 16.0, 34.0, 50.0
	panelW, panelH                       = tileW - marginL - marginR, tileH - marginT - marginB
	charW, lineH                         = 6.2, 14.0
	fontSize, titleSize, legendRowHeight = 11, 13, 15.0
)

type xy struct{ x, y float64 }

type scaleKind int

const (
	linearScale scaleKind = iota
	log1pScale            // log(1 + x), for x ≥ 0
	logScale
)

type axis struct {
	label    string
	scale    scaleKind
	min, max float64
}

// norm maps v to [0, 1] between the axis ends (outside for values beyond).
func (a axis) norm(v float64) float64 {
	switch a.scale {
	case log1pScale:
		return (math.Log1p(max(v, 0)) - math.Log1p(max(a.min, 0))) / (math.Log1p(a.max) - math.Log1p(max(a.min, 0)))
	case logScale:
		return (math.Log(v) - math.Log(a.min)) / (math.Log(a.max) - math.Log(a.min))
	}
	return (v - a.min) / (a.max - a.min)
}

// ticks returns the values to mark: 0, 0.3, 1, 3, 10, … on a log(1 + x)
// axis, powers of ten on a log axis, and 1, 2 or 5 times a power of ten
// apart (about five marks) on a linear one.
func (a axis) ticks() []float64 {
	var out []float64
	switch a.scale {
	case log1pScale:
		for _, v := range []float64{0, 0.3, 1, 3, 10, 30, 100, 300, 1000} {
			if v >= a.min && v <= a.max {
				out = append(out, v)
			}
		}
	case logScale:
		for e := math.Ceil(math.Log10(a.min)); e <= math.Log10(a.max); e++ {
			out = append(out, math.Pow(10, e))
		}
	default:
		raw := (a.max - a.min) / 5
		step := math.Pow(10, math.Floor(math.Log10(raw)))
		for _, m := range []float64{1, 2, 5, 10} {
			if m*step >= raw {
				step *= m
				break
			}
		}
		for v := math.Ceil(a.min/step) * step; v <= a.max+step*1e-9; v += step {
			out = append(out, math.Round(v/step)*step)
		}
	}
	return out
}

// series is a line through its points, or marks at them (radius marks), or
// both; a named series has a legend entry.
type series struct {
	name  string
	pts   []xy
	color string
	width float64
	marks float64
}

// label is a point's name, its lower-left corner off the point by (dx, dy)
// px (y up), with a leader line to the point when it moved away.
type label struct {
	at     xy
	text   string
	dx, dy float64
	leader bool
}

type panel struct {
	title  string
	x, y   axis
	series []series
	labels []label
}

// px returns the point's place in the plotting area, from its lower-left
// corner, y up.
func (p *panel) px(v xy) (float64, float64) {
	return p.x.norm(v.x) * panelW, p.y.norm(v.y) * panelH
}

// addFrontiers draws each detector family's sweep on prof as a line
// through its points, ordered by false deads, beyond the panel's range
// clipped. The legend names the family.
func (p *panel) addFrontiers(rep *report, prof string) {
	for i, f := range frontiers() {
		var pts []xy
		for _, r := range rep.Frontier {
			if r.Profile == prof && r.Family == f.family && r.DetectionP50 != nil {
				pts = append(pts, xy{r.FalseDeadsPerConnDay, *r.DetectionP50 / 1000})
			}
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortStableFunc(pts, func(a, b xy) int { return cmp.Compare(a.x, b.x) })
		c := palette[1+i%(len(palette)-1)]
		p.series = append(p.series, series{name: f.family, pts: pts, color: c, width: 1.2, marks: 1.5})
	}
}

type box struct{ x0, y0, x1, y1 float64 }

func (a box) overlaps(b box) bool { return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 }

// placeLabels puts each point's label beside it, right or left, at the
// nearest height where its box overlaps no label placed before and no
// point; a label moved off its point's line gets a thin leader line. Points
// are taken from the top down, so that crowded clusters fan out; a point
// with no free place stays unlabelled rather than overprinted.
func placeLabels(p *panel, pts []xy, names []string) []label {
	var placed []box
	for _, v := range pts {
		x, y := p.px(v)
		placed = append(placed, box{x - 3, y - 3, x + 3, y + 3})
	}
	order := make([]int, len(pts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(pts[b].y, pts[a].y) })
	var out []label
	for _, i := range order {
		x, y := p.px(pts[i])
		w := float64(len(names[i])) * charW
		var cands [][2]float64                      // offsets of the label's lower-left corner
		for _, dx := range []float64{6, 105, 205} { // then columns further right
			for k := 0; k <= 40; k++ {
				dy := float64((k+1)/2) * lineH / 2
				if k%2 == 1 {
					dy = -dy
				}
				cands = append(cands, [2]float64{dx, dy - lineH/2}, [2]float64{-dx - w, dy - lineH/2})
			}
		}
		for _, c := range cands {
			b := box{x + c[0], y + c[1], x + c[0] + w, y + c[1] + lineH}
			if b.x0 < 0 || b.x1 > panelW || b.y0 < 0 || b.y1 > panelH || slices.ContainsFunc(placed, b.overlaps) {
				continue
			}
			placed = append(placed, b)
			mid := c[1] + lineH/2
			leader := mid > lineH/2 || mid < -lineH/2 || c[0] > 30 || c[0]+w < -30
			out = append(out, label{at: pts[i], text: names[i], dx: c[0], dy: c[1], leader: leader})
			break
		}
	}
	return out
}

// render lays the panels out two to a row and writes them as one SVG.
func render(panels []*panel) string {
	cols := min(2, len(panels))
	rows := (len(panels) + cols - 1) / cols
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="%d">`+"\n",
		float64(cols)*tileW, float64(rows)*tileH, float64(cols)*tileW, float64(rows)*tileH, fontSize)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, p := range panels {
		p.draw(&b, i, float64(i%cols)*tileW+marginL, float64(i/cols)*tileH+marginT)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// draw writes panel p with its plotting area's top-left corner at (ox, oy).
func (p *panel) draw(b *strings.Builder, id int, ox, oy float64) {
	at := func(v xy) (float64, float64) {
		x, y := p.px(v)
		return ox + x, oy + panelH - y
	}
	fmt.Fprintf(b, `<g><title>%s</title>`+"\n", esc(p.title))
	fmt.Fprintf(b, `<clipPath id="area%d"><rect x="%.1f" y="%.1f" width="%g" height="%g"/></clipPath>`+"\n", id, ox, oy, panelW, panelH)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="%d">%s</text>`+"\n", ox+panelW/2, oy-12, titleSize, esc(p.title))
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%g" height="%g" fill="none" stroke="black" stroke-width="0.8"/>`+"\n", ox, oy, panelW, panelH)
	for _, t := range p.x.ticks() {
		x, _ := at(xy{t, p.y.min})
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-width="0.8"/>`, x, oy+panelH, x, oy+panelH+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, oy+panelH+16, tickText(t))
	}
	for _, t := range p.y.ticks() {
		_, y := at(xy{p.x.min, t})
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-width="0.8"/>`, ox-4, y, ox, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", ox-6, y, tickText(t))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", ox+panelW/2, oy+panelH+38, esc(p.x.label))
	fmt.Fprintf(b, `<text transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", ox-46, oy+panelH/2, esc(p.y.label))

	fmt.Fprintf(b, `<g clip-path="url(#area%d)">`+"\n", id)
	for _, s := range p.series {
		if s.width > 0 && len(s.pts) > 1 {
			var pts []string
			for _, v := range s.pts {
				x, y := at(v)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			}
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="%g" points="%s"/>`+"\n", s.color, s.width, strings.Join(pts, " "))
		}
		if s.marks > 0 {
			for _, v := range s.pts {
				x, y := at(v)
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s"/>`, x, y, s.marks, s.color)
			}
			b.WriteString("\n")
		}
	}
	for _, l := range p.labels {
		x, y := at(l.at)
		if l.leader {
			ex := l.dx - 2 // the near end of the label's middle
			if l.dx < 0 {
				ex = l.dx + float64(len(l.text))*charW + 2
			}
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#8c8c8c" stroke-width="0.4"/>`, x, y, x+ex, y-l.dy-lineH/2)
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x+l.dx, y-l.dy-3, esc(l.text))
	}
	b.WriteString("</g>\n")

	// The legend, top right inside the plotting area.
	var named []series
	for _, s := range p.series {
		if s.name != "" {
			named = append(named, s)
		}
	}
	if len(named) > 0 {
		w := 0.0
		for _, s := range named {
			w = max(w, float64(len(s.name))*charW)
		}
		w += 36
		lx, ly := ox+panelW-w-6, oy+6
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="white" fill-opacity="0.85" stroke="#c8c8c8" stroke-width="0.5"/>`+"\n", lx, ly, w, float64(len(named))*legendRowHeight+6)
		for i, s := range named {
			y := ly + 3 + (float64(i)+0.5)*legendRowHeight
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"/>`, lx+6, y, lx+26, y, s.color, max(s.width, 1))
			if s.marks > 0 {
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s"/>`, lx+16, y, s.marks, s.color)
			}
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" dominant-baseline="middle">%s</text>`+"\n", lx+31, y, esc(s.name))
		}
	}
	b.WriteString("</g>\n")
}

func tickText(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

var svgEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

// esc makes s SVG text: markup escaped, and the control characters XML
// cannot hold even as references dropped.
func esc(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
			return -1
		}
		return r
	}, s)
	return svgEscaper.Replace(s)
}
