package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// writePlot draws one panel per profile (detection p50 against false dead
// verdicts per connection-day, one labelled point per policy, and a line
// per detector family sweeping its knob: the frontier) and one panel of the
// storm's dial attempts per second over time.
func writePlot(file string, rep *report) error {
	var panels []*plot.Plot
	var order []string
	byProfile := map[string][]detectRow{}
	for _, r := range rep.Detect {
		if _, ok := byProfile[r.Profile]; !ok {
			order = append(order, r.Profile)
		}
		byProfile[r.Profile] = append(byProfile[r.Profile], r)
	}
	for _, prof := range order {
		p := plot.New()
		p.Title.Text = prof
		p.X.Label.Text = "false dead verdicts per connection-day (log(1 + x) scale)"
		// Most of the choice lies between 0 and a few false deads a day,
		// and φ and akka reach 30: log(1 + x) keeps 0 and spreads both.
		p.X.Scale, p.X.Tick.Marker = log1pScale{}, log1pTicks{}
		p.Y.Label.Text = "detection time p50 (s)"
		var pts plotter.XYs
		var names []string
		maxX, maxY := 0.0, 0.0
		for _, r := range byProfile[prof] {
			if r.DetectionP50 == nil {
				continue // never detected: no finite point
			}
			pts = append(pts, plotter.XY{X: r.FalseDeadsPerConnDay, Y: *r.DetectionP50 / 1000})
			names = append(names, r.Policy)
			maxX, maxY = max(maxX, r.FalseDeadsPerConnDay), max(maxY, *r.DetectionP50/1000)
		}
		// Rates and times cannot be negative: both axes start at 0 (an
		// all-zero column would otherwise be centred on [-1, 1]).
		xMax, yMax := max(1, maxX*1.5), max(1, maxY*1.1)
		if len(pts) > 0 {
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return err
			}
			p.Add(sc)
			p.Add(placeLabels(pts, names, xMax, yMax)...)
		}
		if err := addFrontiers(p, rep, prof); err != nil {
			return err
		}
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, xMax, 0, yMax // after Add, which widens them
		panels = append(panels, p)
	}
	if len(rep.Storm) > 0 {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("reconnect storm: %d clients, %g accepts/s", rep.Storm[0].Clients, rep.Storm[0].AcceptPerSec)
		p.X.Label.Text = "seconds after the restart"
		p.Y.Label.Text = "dial attempts per second (log scale)"
		// A log scale keeps the advised line, near the accept rate, visible
		// beside storms a hundred times higher.
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Legend.Top = true
		var onTop []plot.Plotter
		for i, r := range rep.Storm {
			if len(r.AttemptsPerSec) == 0 {
				continue
			}
			xy := make(plotter.XYs, len(r.AttemptsPerSec))
			for s, n := range r.AttemptsPerSec {
				// A log scale has no zero: a second without attempts is
				// drawn below the axis, where the line is clipped.
				xy[s] = plotter.XY{X: float64(s), Y: max(float64(n), 0.1)}
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return err
			}
			l.Color = palette[i%len(palette)]
			l.Width = vg.Points(1)
			if r.Advised {
				l.Width = vg.Points(2.5) // the advised line stands out, drawn on top
				onTop = append(onTop, l)
			} else {
				p.Add(l)
			}
			name := r.Policy
			if r.Advised {
				name += " (advised)"
			}
			p.Legend.Add(name, l)
		}
		p.Add(onTop...)
		// After Add, which widens the ranges to the data.
		p.Y.Min, p.Y.Max = 1, maxPeak(rep.Storm)*2
		p.X.Min, p.X.Max = 0, stormSpan
		p.X.Label.Text = fmt.Sprintf("seconds after the restart (the first %d)", int(stormSpan))
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return fmt.Errorf("plot: nothing to draw")
	}
	cols := min(2, len(panels))
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		grid[i/cols][i%cols] = p
	}
	w, h := vg.Length(cols)*tileW*vg.Centimeter, vg.Length(rows)*tileH*vg.Centimeter
	var c vg.CanvasWriterTo
	if strings.HasSuffix(file, ".svg") {
		c = vgsvg.New(w, h)
	} else {
		c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Centimeter, PadY: vg.Centimeter, PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2, PadLeft: vg.Centimeter / 2, PadRight: vg.Centimeter / 2}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// palette has a distinct colour for each storm row; the advised default is
// drawn first, in black.
var palette = []color.Color{
	color.RGBA{0, 0, 0, 255},       // black
	color.RGBA{230, 159, 0, 255},   // orange
	color.RGBA{86, 180, 233, 255},  // sky blue
	color.RGBA{0, 158, 115, 255},   // green
	color.RGBA{204, 121, 167, 255}, // purple
	color.RGBA{0, 114, 178, 255},   // blue
	color.RGBA{213, 94, 0, 255},    // vermilion
	color.RGBA{240, 228, 66, 255},  // yellow
	color.RGBA{128, 128, 128, 255}, // grey
	color.RGBA{140, 86, 75, 255},   // brown
	color.RGBA{23, 190, 207, 255},  // cyan
	color.RGBA{188, 189, 34, 255},  // olive
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

// Each panel is a tileW x tileH cm tile, of which axes, titles and padding
// take about 3.6 and 4.1 cm; labels are 10-point text, about 0.19 cm a
// character and 0.4 cm high (measured on a rendered plot).
const (
	tileW, tileH   = 16.0, 14.0
	panelW, panelH = tileW - 3.6, tileH - 4.1
	charW, lineH   = 0.19, 0.4
)

type box struct{ x0, y0, x1, y1 float64 }

func (a box) overlaps(b box) bool { return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 }

// placeLabels puts each point's label beside it, right or left, at the
// nearest height where its box overlaps no label placed before and no
// point; a label moved off its point's line gets a thin leader line. Points
// are taken from the top down, so that crowded clusters fan out.
func placeLabels(pts plotter.XYs, names []string, xMax, yMax float64) []plot.Plotter {
	cm := func(p plotter.XY) (float64, float64) {
		return log1pScale{}.Normalize(0, xMax, p.X) * panelW, p.Y / yMax * panelH
	}
	var placed []box
	for _, p := range pts {
		x, y := cm(p)
		placed = append(placed, box{x - 0.1, y - 0.1, x + 0.1, y + 0.1})
	}
	order := make([]int, len(pts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmpFloat(pts[b].Y, pts[a].Y) })
	var out []plot.Plotter
	for _, i := range order {
		x, y := cm(pts[i])
		w := float64(len(names[i])) * charW
		var cands [][2]float64                        // offsets of the label's lower-left corner, cm
		for _, dx := range []float64{0.2, 3.5, 6.8} { // then columns further right
			for k := 0; k <= 40; k++ {
				dy := float64((k+1)/2) * lineH / 2
				if k%2 == 1 {
					dy = -dy
				}
				cands = append(cands, [2]float64{dx, dy - lineH/2}, [2]float64{-dx - w, dy - lineH/2})
			}
		}
		best, found := cands[0], false
		for _, c := range cands {
			b := box{x + c[0], y + c[1], x + c[0] + w, y + c[1] + lineH}
			if b.x0 < 0 || b.x1 > panelW || b.y0 < 0 || b.y1 > panelH {
				continue
			}
			if !slices.ContainsFunc(placed, b.overlaps) {
				best, found = c, true
				break
			}
		}
		if !found {
			continue // no free place: the point stays unlabelled rather than overprinted
		}
		placed = append(placed, box{x + best[0], y + best[1], x + best[0] + w, y + best[1] + lineH})
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{pts[i]}, Labels: []string{names[i]}})
		if err != nil {
			continue
		}
		lb.Offset = vg.Point{X: vg.Length(best[0]) * vg.Centimeter, Y: vg.Length(best[1]) * vg.Centimeter}
		out = append(out, lb)
		if dy := best[1] + lineH/2; dy > lineH/2 || dy < -lineH/2 || best[0] > 1 || best[0]+w < -1 {
			// Leader from the point to the near end of the label's middle.
			ex := best[0]
			if ex > 0 {
				ex -= 0.05
			} else {
				ex += w + 0.05
			}
			end := plotter.XY{X: math.Expm1(math.Log1p(xMax) * (math.Log1p(pts[i].X)/math.Log1p(xMax) + ex/panelW)), Y: pts[i].Y + (best[1]+lineH/2)/panelH*yMax}
			if ln, err := plotter.NewLine(plotter.XYs{pts[i], end}); err == nil {
				ln.Width = vg.Points(0.4)
				ln.Color = color.Gray{Y: 140}
				out = append(out, ln)
			}
		}
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// addFrontiers draws each detector family's sweep on prof as a line
// through its points, ordered by false deads, beyond the panel's range
// clipped. The legend names the family and its knob.
func addFrontiers(p *plot.Plot, rep *report, prof string) error {
	for i, f := range frontiers() {
		var pts plotter.XYs
		for _, r := range rep.Frontier {
			if r.Profile == prof && r.Family == f.family && r.DetectionP50 != nil {
				pts = append(pts, plotter.XY{X: r.FalseDeadsPerConnDay, Y: *r.DetectionP50 / 1000})
			}
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortStableFunc(pts, func(a, b plotter.XY) int { return cmpFloat(a.X, b.X) })
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color, sc.Color = palette[1+i%(len(palette)-1)], palette[1+i%(len(palette)-1)]
		l.Width = vg.Points(1.2)
		sc.Radius = vg.Points(1.5)
		p.Add(l, sc)
		p.Legend.Add(f.family, l, sc)
	}
	p.Legend.Top = true
	return nil
}

// log1pScale maps x to log(1 + x) between the axis ends (x ≥ 0).
type log1pScale struct{}

func (log1pScale) Normalize(lo, hi, x float64) float64 {
	return (math.Log1p(max(x, 0)) - math.Log1p(max(lo, 0))) / (math.Log1p(hi) - math.Log1p(max(lo, 0)))
}

// log1pTicks marks 0, 0.3, 1, 3, 10, … within the axis.
type log1pTicks struct{}

func (log1pTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for _, v := range []float64{0, 0.3, 1, 3, 10, 30, 100, 300, 1000} {
		if v >= lo && v <= hi {
			out = append(out, plot.Tick{Value: v, Label: fmt.Sprint(v)})
		}
	}
	return out
}
