package report

import (
	"bytes"
	"encoding/xml"
	"io"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// The html report is one self-contained page: it parses as HTML, refers to
// nothing outside itself (no script, stylesheet, font, image, frame, or
// link but to its own anchors), its SVG timelines are valid XML, and it
// styles itself for light and dark pages and for print.
func TestHTMLSelfContained(t *testing.T) {
	page := write(t, build(t, incident(t, true), Options{}), "html")
	checkHTML(t, page)
	for _, want := range []string{"prefers-color-scheme: dark", "@media print", "<svg", "0.0.0.0:8080", "TW101"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// checkHTML checks a page as TestHTMLSelfContained says, and returns its SVGs.
func checkHTML(t *testing.T, page []byte) []string {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("not HTML: %v", err)
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "script", "link", "iframe", "object", "embed", "img", "image", "use", "base", "audio", "video", "source", "foreignobject":
				t.Errorf("the page has a <%s> element", n.Data)
			case "style":
				css := nodeText(n)
				for _, bad := range []string{"url(", "@import", "@font-face", "http:", "https:"} {
					if strings.Contains(css, bad) {
						t.Errorf("the style refers outside the page: %q", bad)
					}
				}
			}
			for _, a := range n.Attr {
				k := strings.ToLower(a.Key)
				switch {
				case k == "xmlns" && a.Val == "http://www.w3.org/2000/svg": // a name, not a load
				case k == "href" || k == "src" || k == "xlink:href" || k == "action" || k == "srcset" || k == "poster":
					if !strings.HasPrefix(a.Val, "#") {
						t.Errorf("<%s %s=%q> refers outside the page", n.Data, a.Key, a.Val)
					}
				case strings.HasPrefix(k, "on"):
					t.Errorf("<%s %s>: a script", n.Data, a.Key)
				case strings.Contains(a.Val, "url(") || strings.Contains(a.Val, "://"):
					t.Errorf("<%s %s=%q> refers outside the page", n.Data, a.Key, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(string(page), -1)
	for _, s := range svgs {
		d := xml.NewDecoder(strings.NewReader(s))
		d.Strict = true
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("an SVG is not valid XML: %v\n%s", err, s)
			}
		}
	}
	return svgs
}

func nodeText(n *html.Node) string {
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return b.String()
}

// A timeline marks each refused syscall with its cause in a tooltip, and
// stacks the port's states.
func TestTimeline(t *testing.T) {
	rep := build(t, incident(t, false), Options{})
	var tl *Timeline
	for i := range rep.Timelines {
		if rep.Timelines[i].Port == 8080 && !rep.Timelines[i].Clients {
			tl = &rep.Timelines[i]
		}
	}
	if tl == nil || len(tl.Failures) != 2 || len(tl.Samples) < 3 {
		t.Fatalf("no timeline of port 8080 with its 2 failures: %+v", rep.Timelines)
	}
	svg := rep.svgTimeline(tl, "port 8080")
	var doc struct {
		XMLName xml.Name `xml:"http://www.w3.org/2000/svg svg"`
		Groups  []struct {
			Class string `xml:"class,attr"`
			Title string `xml:"title"`
		} `xml:"g"`
		Polygons []struct {
			Class string `xml:"class,attr"`
		} `xml:"polygon"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, g := range doc.Groups {
		if g.Class == "fail" {
			titles = append(titles, g.Title)
		}
	}
	if len(titles) != 2 || !strings.Contains(titles[0], "bind 0.0.0.0:8080 EADDRINUSE by 4300 nginx: 1 TIME_WAIT without SO_REUSEADDR") {
		t.Errorf("failure tooltips %q", titles)
	}
	classes := map[string]bool{}
	for _, p := range doc.Polygons {
		classes[p.Class] = true
	}
	if !classes["st-listen"] || !classes["st-tw"] {
		t.Errorf("stacked layers %v: want LISTEN and TIME_WAIT", classes)
	}
}
