package main

import (
	"fmt"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// writePlot draws one panel per profile (detection p50 against false dead
// verdicts per connection-day, one labelled point per policy) and one
// panel of the storm's dial attempts per second over time.
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
		p.X.Label.Text = "false dead verdicts per connection-day"
		p.Y.Label.Text = "detection time p50 (s)"
		var pts plotter.XYLabels
		for _, r := range byProfile[prof] {
			if r.DetectionP50 == nil {
				continue // never detected: no finite point
			}
			pts.XYs = append(pts.XYs, plotter.XY{X: r.FalseDeadsPerConnDay, Y: *r.DetectionP50 / 1000})
			pts.Labels = append(pts.Labels, r.Policy)
		}
		if len(pts.XYs) > 0 {
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return err
			}
			lb, err := plotter.NewLabels(pts)
			if err != nil {
				return err
			}
			p.Add(sc, lb)
		}
		panels = append(panels, p)
	}
	if len(rep.Storm) > 0 {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("reconnect storm: %d clients, %g accepts/s", rep.Storm[0].Clients, rep.Storm[0].AcceptPerSec)
		p.X.Label.Text = "seconds after the restart"
		p.Y.Label.Text = "dial attempts per second"
		p.Legend.Top = true
		for i, r := range rep.Storm {
			xy := make(plotter.XYs, len(r.AttemptsPerSec))
			for s, n := range r.AttemptsPerSec {
				xy[s] = plotter.XY{X: float64(s), Y: float64(n)}
			}
			if len(xy) == 0 {
				continue
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(i)
			l.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
			p.Add(l)
			name := r.Policy
			if r.Advised {
				name += " (advised)"
			}
			p.Legend.Add(name, l)
		}
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
	w, h := vg.Length(cols)*14*vg.Centimeter, vg.Length(rows)*11*vg.Centimeter
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
