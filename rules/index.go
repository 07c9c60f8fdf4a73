package rules

import "strings"

// prefixIndex maps literal URL prefixes to rule positions. A lookup walks a
// radix tree along the URL and collects every rule whose literal prefix the
// URL starts with, so its cost grows with the URL's length and the number of
// candidates, not with the number of rules.
type prefixIndex struct {
	root radixNode
}

type radixNode struct {
	label    string
	children []*radixNode // first bytes of labels are distinct
	rules    []int
}

func (ix *prefixIndex) insert(prefix string, rule int) {
	n := &ix.root
	for {
		if prefix == "" {
			n.rules = append(n.rules, rule)
			return
		}
		var child *radixNode
		for _, c := range n.children {
			if c.label[0] == prefix[0] {
				child = c
				break
			}
		}
		if child == nil {
			n.children = append(n.children, &radixNode{label: prefix, rules: []int{rule}})
			return
		}
		common := commonPrefix(child.label, prefix)
		if common < len(child.label) {
			// Split child at common.
			rest := &radixNode{label: child.label[common:], children: child.children, rules: child.rules}
			child.label = child.label[:common]
			child.children = []*radixNode{rest}
			child.rules = nil
		}
		prefix = prefix[common:]
		n = child
	}
}

func commonPrefix(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// candidates appends to dst every rule whose prefix u starts with.
func (ix *prefixIndex) candidates(u string, dst []int) []int {
	n := &ix.root
	dst = append(dst, n.rules...)
	for u != "" {
		var next *radixNode
		for _, c := range n.children {
			if c.label[0] == u[0] {
				next = c
				break
			}
		}
		if next == nil || !strings.HasPrefix(u, next.label) {
			return dst
		}
		dst = append(dst, next.rules...)
		u = u[len(next.label):]
		n = next
	}
	return dst
}
