package engine

import (
	"fmt"
	"math/big"
	"slices"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/internal/spell"
)

// The static check: what `felhom-agent check` (and every load, so a hot
// reload refuses it like a syntax error) reports about a file's use of
// the builtins before anything runs, from the builtin tables alone — their
// members, Sigs, unpackers ([builtins.Func.Probe]) and declared return
// Shapes — so a builtin another engineer adds is checked as soon as it is
// in a table:
//
//   - a module member that does not exist (proxmox.guets);
//   - a call with an unknown keyword, a missing required argument, too many
//     positional ones, or a literal the builtin's unpacker refuses
//     (proxmox.guest("101"));
//   - a field the value does not have, where the value comes from a builtin
//     that declares its Shape (for g in proxmox.guests(): g.hostname);
//   - ctx.X and ctx.params.X that the run's ctx and the playbook's
//     declaration do not have (checked once the declaration is known).
//
// The promise is no false positives: a value whose origin the checker
// cannot follow — a function's parameter, a variable assigned in more than
// one place, anything computed — is left alone. It follows a variable
// only when the file binds it exactly once (an assignment, a for loop or a
// comprehension's for clause), so every value it can hold comes from that
// one expression.

// builtinIndex is the tables of one Loader, as the checker looks them up.
type builtinIndex struct {
	modules map[string]*builtins.Table // by module name
	globals map[string]*builtinFunc    // the unnamed tables' functions
	funcs   map[string]*builtinFunc    // by qualified name
}

// builtinFunc is one builtin with its parsed Sig (nil when it does not
// parse: then its calls are not checked).
type builtinFunc struct {
	name string // qualified: "proxmox.vzdump"
	f    *builtins.Func
	sig  *builtins.Signature
}

func newBuiltinIndex(tables []*builtins.Table) *builtinIndex {
	x := &builtinIndex{modules: map[string]*builtins.Table{}, globals: map[string]*builtinFunc{}, funcs: map[string]*builtinFunc{}}
	for _, t := range tables {
		if t.Name != "" {
			x.modules[t.Name] = t
		}
		for i := range t.Funcs {
			f := &t.Funcs[i]
			bf := &builtinFunc{name: f.Name, f: f}
			if t.Name != "" {
				bf.name = t.Name + "." + f.Name
			} else {
				x.globals[f.Name] = bf
			}
			bf.sig, _ = f.Signature()
			x.funcs[bf.name] = bf
		}
	}
	return x
}

// member returns the function of module t called name, or nil; ok
// reports whether t has such a member at all (a function or an attribute).
func (x *builtinIndex) member(t *builtins.Table, name string) (f *builtinFunc, ok bool) {
	if f := x.funcs[t.Name+"."+name]; f != nil {
		return f, true
	}
	return nil, slices.ContainsFunc(t.Attrs, func(a builtins.Attr) bool { return a.Name == name })
}

// ctxShape is the struct a run's entry point gets as ctx (run.go builds
// it; a test holds the two together).
var ctxShape = builtins.StructShape("ctx", "params", "run_id", "playbook", "version", "trigger")

// staticInfo is what the static check found in one file: diagnostics that
// need only the tables, and the uses of ctx to check against the
// declaration once the file has run.
type staticInfo struct {
	diags   []Diagnostic
	ctxUses []ctxUse
}

// ctxUse is X.name or X.params.name where X is the first parameter of a
// function — the run's ctx if that function is the entry point.
type ctxUse struct {
	param  syntax.Position // where the parameter is declared
	name   string
	params bool // ctx.params.name, not ctx.name
	pos    syntax.Position
}

// origin is what the checker knows of a value.
type origin struct {
	module *builtins.Table  // the value is this module
	fn     *builtinFunc     // the value is this builtin
	shape  *builtins.Shape  // the value has this shape
	from   string           // the builtin the shape comes from, for messages
	ctx    *syntax.Position // the value is this first parameter (maybe ctx)
	params bool             // with ctx: the value is ctx.params
}

// checker checks one resolved file.
type checker struct {
	x    *builtinIndex
	defs map[*syntax.Ident][]binding // by the binding's first occurrence
	memo map[syntax.Expr]origin
	busy map[*syntax.Ident]bool // variables being followed (a = a[0] loops)
	info *staticInfo
}

// binding is one place a variable is bound.
type binding struct {
	pos   syntax.Position // of the name bound
	value syntax.Expr     // x = value
	iter  syntax.Expr     // for x in iter
	param bool            // a function's first parameter
	// loop is the span of the for statement that binds x, for a use
	// inside it: there x is the element, unless the loop rebinds x.
	loop [2]syntax.Position
}

// checkStatic checks f, resolved, against the tables in x.
func checkStatic(f *syntax.File, x *builtinIndex) *staticInfo {
	c := &checker{x: x, defs: map[*syntax.Ident][]binding{}, memo: map[syntax.Expr]origin{},
		busy: map[*syntax.Ident]bool{}, info: &staticInfo{}}
	syntax.Walk(f, c.collect)
	syntax.Walk(f, c.top)
	return c.info
}

// top finds the functions of the file and checks their bodies. The top
// level itself is left to the load, which executes it: its calls are
// judged by the builtins themselves, and reported once.
func (c *checker) top(n syntax.Node) bool {
	switch n := n.(type) {
	case *syntax.DefStmt:
		for _, st := range n.Body {
			syntax.Walk(st, c.visit)
		}
		return false
	case *syntax.LambdaExpr:
		syntax.Walk(n.Body, c.visit)
		return false
	}
	return true
}

// key is the variable an identifier names: its binding's first
// occurrence, shared by every use (in nested functions too); nil for a
// predeclared, universal or undefined name.
func key(id *syntax.Ident) *syntax.Ident {
	b, ok := id.Binding.(*resolve.Binding)
	if !ok || b == nil {
		return nil
	}
	switch b.Scope {
	case resolve.Local, resolve.Cell, resolve.Free, resolve.Global:
		return b.First
	}
	return nil
}

func (c *checker) bind(lhs syntax.Expr, b binding) {
	switch lhs := lhs.(type) {
	case *syntax.Ident:
		if k := key(lhs); k != nil {
			b.pos = lhs.NamePos
			c.defs[k] = append(c.defs[k], b)
		}
	case *syntax.ParenExpr:
		c.bind(lhs.X, b)
	case *syntax.TupleExpr:
		for _, e := range lhs.List {
			c.bind(e, binding{}) // unpacked: not followed
		}
	case *syntax.ListExpr:
		for _, e := range lhs.List {
			c.bind(e, binding{})
		}
	}
}

// collect records every place each variable is bound.
func (c *checker) collect(n syntax.Node) bool {
	switch n := n.(type) {
	case *syntax.AssignStmt:
		if n.Op == syntax.EQ {
			c.bind(n.LHS, binding{value: n.RHS})
		} else {
			c.bind(n.LHS, binding{})
		}
	case *syntax.ForStmt:
		start, end := n.Span()
		c.bind(n.Vars, binding{iter: n.X, loop: [2]syntax.Position{start, end}})
	case *syntax.ForClause:
		c.bind(n.Vars, binding{iter: n.X})
	case *syntax.DefStmt:
		c.bind(n.Name, binding{})
		c.params(n.Params)
	case *syntax.LambdaExpr:
		c.params(n.Params)
	case *syntax.LoadStmt:
		for _, id := range n.To {
			c.bind(id, binding{})
		}
	}
	return true
}

func (c *checker) params(ps []syntax.Expr) {
	for i, p := range ps {
		var id *syntax.Ident
		switch p := p.(type) {
		case *syntax.Ident:
			id = p
		case *syntax.BinaryExpr:
			id, _ = p.X.(*syntax.Ident)
		case *syntax.UnaryExpr:
			id, _ = p.X.(*syntax.Ident)
		}
		if id == nil {
			continue
		}
		_, plain := p.(*syntax.Ident)
		c.bind(id, binding{param: i == 0 && plain})
	}
}

// originOf is what the checker knows of e's value.
func (c *checker) originOf(e syntax.Expr) origin {
	if o, ok := c.memo[e]; ok {
		return o
	}
	o := c.compute(e)
	c.memo[e] = o
	return o
}

func (c *checker) compute(e syntax.Expr) origin {
	switch e := e.(type) {
	case *syntax.ParenExpr:
		return c.originOf(e.X)
	case *syntax.Ident:
		return c.variable(e)
	case *syntax.DotExpr:
		x := c.originOf(e.X)
		switch {
		case x.module != nil:
			if f, _ := c.x.member(x.module, e.Name.Name); f != nil {
				return origin{fn: f}
			}
		case x.ctx != nil && !x.params && e.Name.Name == "params":
			return origin{ctx: x.ctx, params: true}
		case x.shape != nil && !x.shape.IsList():
			if s := x.shape.Nested[e.Name.Name]; s != nil {
				return origin{shape: s, from: x.from}
			}
		}
	case *syntax.CallExpr:
		fn := c.originOf(e.Fn)
		if _, inner := c.caught(e, fn.fn); inner != nil && inner.f.Returns != nil && fn.fn.f.Returns != nil {
			// catch(f, ...)'s value is what f returns.
			return origin{shape: fn.fn.f.Returns.With("value", inner.f.Returns), from: "catch(" + inner.name + ")"}
		}
		if fn.fn != nil && fn.fn.f.Returns != nil {
			return origin{shape: fn.fn.f.Returns, from: fn.fn.name + "()"}
		}
		// sorted(xs, ...) of a list keeps its elements.
		if id, ok := e.Fn.(*syntax.Ident); ok && id.Name == "sorted" && isUniversal(id) && len(e.Args) > 0 {
			if _, kw := e.Args[0].(*syntax.BinaryExpr); !kw {
				if x := c.originOf(e.Args[0]); x.shape != nil && x.shape.IsList() {
					return x
				}
			}
		}
	case *syntax.IndexExpr:
		if x := c.originOf(e.X); x.shape != nil && x.shape.IsList() {
			return origin{shape: x.shape.Elem, from: x.from}
		}
	case *syntax.SliceExpr:
		if x := c.originOf(e.X); x.shape != nil && x.shape.IsList() {
			return x
		}
	case *syntax.Comprehension:
		if !e.Curly {
			if b := c.originOf(e.Body); b.shape != nil {
				return origin{shape: builtins.ListOf(b.shape), from: b.from}
			}
		}
	}
	return origin{}
}

func isUniversal(id *syntax.Ident) bool {
	b, ok := id.Binding.(*resolve.Binding)
	return ok && b != nil && b.Scope == resolve.Universal
}

// variable is what the checker knows of the value id names.
func (c *checker) variable(id *syntax.Ident) origin {
	if b, ok := id.Binding.(*resolve.Binding); ok && b != nil && b.Scope == resolve.Predeclared {
		if t := c.x.modules[id.Name]; t != nil {
			return origin{module: t}
		}
		if f := c.x.globals[id.Name]; f != nil {
			return origin{fn: f}
		}
		return origin{}
	}
	k := key(id)
	defs := c.defs[k]
	if k == nil || c.busy[k] {
		return origin{}
	}
	d, ok := loopBinding(id, defs)
	if !ok {
		if len(defs) != 1 {
			return origin{}
		}
		d = defs[0]
	}
	c.busy[k] = true
	defer delete(c.busy, k)
	switch {
	case d.param:
		pos := k.NamePos
		return origin{ctx: &pos}
	case d.value != nil:
		return c.originOf(d.value)
	case d.iter != nil:
		if x := c.originOf(d.iter); x.shape != nil && x.shape.IsList() {
			return origin{shape: x.shape.Elem, from: x.from}
		}
	}
	return origin{}
}

// loopBinding is the for loop that binds the function-local id at its
// use inside the loop, when nothing else in the loop rebinds it: there id
// is an element of what the loop iterates, however often the function
// binds the name elsewhere.
func loopBinding(id *syntax.Ident, defs []binding) (binding, bool) {
	if b, ok := id.Binding.(*resolve.Binding); !ok || (b.Scope != resolve.Local && b.Scope != resolve.Cell) {
		return binding{}, false
	}
	inside := func(p syntax.Position, span [2]syntax.Position) bool {
		return !before(p, span[0]) && before(p, span[1])
	}
	var best *binding
	for i := range defs {
		if d := &defs[i]; d.iter != nil && d.loop[0].IsValid() && inside(id.NamePos, d.loop) &&
			(best == nil || before(best.loop[0], d.loop[0])) {
			best = d
		}
	}
	if best == nil {
		return binding{}, false
	}
	for _, d := range defs {
		if d.pos != best.pos && inside(d.pos, best.loop) {
			return binding{}, false
		}
	}
	return *best, true
}

// before reports whether p comes before q in one file.
func before(p, q syntax.Position) bool {
	return p.Line < q.Line || p.Line == q.Line && p.Col < q.Col
}

// listMethods are the attributes of every list.
var listMethods = []string{"append", "clear", "extend", "index", "insert", "pop", "remove"}

// visit reports what is wrong at n.
func (c *checker) visit(n syntax.Node) bool {
	switch n := n.(type) {
	case *syntax.DotExpr:
		c.checkDot(n)
	case *syntax.CallExpr:
		if fn := c.originOf(n.Fn); fn.fn != nil && fn.fn.sig != nil {
			c.checkCall(n, fn.fn)
			if call, inner := c.caught(n, fn.fn); inner != nil && inner.sig != nil {
				c.checkCall(call, inner)
			}
		}
	}
	return true
}

// caught returns, for a call of catch whose first argument is a builtin,
// the call catch makes (that builtin with the remaining arguments) and
// the builtin; nil otherwise. catch(f, *args, **kwargs) calls f(*args,
// **kwargs), so f's arguments are checked as if f were called directly.
func (c *checker) caught(call *syntax.CallExpr, fn *builtinFunc) (*syntax.CallExpr, *builtinFunc) {
	if fn == nil || fn.name != "catch" || len(call.Args) == 0 {
		return nil, nil
	}
	first := call.Args[0]
	switch a := first.(type) {
	case *syntax.BinaryExpr:
		if a.Op == syntax.EQ {
			return nil, nil // fn = ..., by name
		}
	case *syntax.UnaryExpr:
		if a.Op == syntax.STAR || a.Op == syntax.STARSTAR {
			return nil, nil
		}
	}
	inner := c.originOf(first).fn
	if inner == nil {
		return nil, nil
	}
	return &syntax.CallExpr{Fn: first, Lparen: call.Lparen, Args: call.Args[1:], Rparen: call.Rparen}, inner
}

func (c *checker) report(pos syntax.Position, format string, args ...any) {
	c.info.diags = append(c.info.diags, at(pos, fmt.Sprintf(format, args...)))
}

// suggest is " (did you mean X?)" for the candidate nearest to name, or "".
func suggest(name string, candidates []string, prefix string) string {
	if n := spell.Nearest(name, candidates); n != "" {
		return fmt.Sprintf(" (did you mean %s%s?)", prefix, n)
	}
	return ""
}

func (c *checker) checkDot(n *syntax.DotExpr) {
	x := c.originOf(n.X)
	name := n.Name.Name
	switch {
	case x.module != nil:
		if _, ok := c.x.member(x.module, name); !ok {
			var members []string
			for _, f := range x.module.Funcs {
				members = append(members, f.Name)
			}
			for _, a := range x.module.Attrs {
				members = append(members, a.Name)
			}
			c.report(n.Dot, "module %s has no .%s field or method%s", x.module.Name, name, suggest(name, members, "."))
		}
	case x.ctx != nil:
		c.info.ctxUses = append(c.info.ctxUses, ctxUse{param: *x.ctx, name: name, params: x.params, pos: n.Dot})
	case x.shape != nil && x.shape.IsList():
		if !slices.Contains(listMethods, name) {
			c.report(n.Dot, "%s returns a %s: a list has no field %s (iterate over it, or index it)", x.from, x.shape.Name, name)
		}
	case x.shape != nil:
		if !x.shape.Has(name) {
			c.report(n.Dot, "%s (from %s) has no field %s%s; its fields are %s",
				article(x.shape.Name), x.from, name, suggest(name, x.shape.Fields, "."), strings.Join(x.shape.Fields, ", "))
		}
	}
}

// article is "a guest", "an error".
func article(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

// checkCall holds a call of a builtin to its Sig, and its literal
// arguments to the builtin's unpacker.
func (c *checker) checkCall(call *syntax.CallExpr, fn *builtinFunc) {
	sig := fn.sig
	var positional []syntax.Expr
	var star, starstar bool
	bound := map[string]bool{}
	type kwArg struct {
		name *syntax.Ident
		val  syntax.Expr
	}
	var kws []kwArg
	for _, a := range call.Args {
		switch a := a.(type) {
		case *syntax.UnaryExpr:
			if a.Op == syntax.STAR {
				star = true
				continue
			}
			if a.Op == syntax.STARSTAR {
				starstar = true
				continue
			}
		case *syntax.BinaryExpr:
			if a.Op == syntax.EQ {
				if id, ok := a.X.(*syntax.Ident); ok {
					kws = append(kws, kwArg{id, a.Y})
					continue
				}
			}
		}
		positional = append(positional, a)
	}
	bad, tooMany := false, false
	if !sig.Varargs && len(positional) > sig.Positional {
		start, _ := positional[sig.Positional].Span()
		var byName []string
		for _, p := range sig.Params[sig.Positional:] {
			byName = append(byName, p.Name)
		}
		hint := ""
		if len(byName) > 0 {
			hint = "; pass " + strings.Join(byName, ", ") + " by name"
		}
		c.report(start, "%s: got %d positional arguments, want at most %d%s", fn.name, len(positional), sig.Positional, hint)
		bad, tooMany = true, true
	}
	for i := range min(len(positional), sig.Positional) {
		bound[sig.Params[i].Name] = true
	}
	meant := map[string]bool{} // parameters a misspelt keyword was probably meant for
	for _, kw := range kws {
		name := kw.name.Name
		p := sig.Param(name)
		switch {
		case (p == nil || p.PositionalOnly) && !sig.Kwargs:
			n := spell.Nearest(name, keywords(sig))
			hint := ""
			if n != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", n)
				meant[n] = true
			}
			c.report(kw.name.NamePos, "%s: unexpected keyword argument %q%s", fn.name, name, hint)
			bad = true
		case p != nil && bound[name]:
			c.report(kw.name.NamePos, "%s: got multiple values for parameter %q", fn.name, name)
			bad = true
		}
		bound[name] = true
	}
	if !star && !starstar && !tooMany {
		for _, p := range sig.Params {
			if p.Required && !bound[p.Name] && !meant[p.Name] {
				c.report(call.Lparen, "%s: missing argument for %s", fn.name, p.Name)
				bad = true
			}
		}
	}
	if bad {
		return
	}
	probe := func(name string, e syntax.Expr) {
		v, ok := literal(e)
		if !ok {
			return
		}
		if err := fn.f.Probe(fn.name, []starlark.Tuple{{starlark.String(name), v}}); err != nil {
			start, _ := e.Span()
			c.report(start, "%s", err.Error())
		}
	}
	for i, e := range positional {
		if i < sig.Positional && !sig.Params[i].PositionalOnly {
			probe(sig.Params[i].Name, e)
		}
	}
	for _, kw := range kws {
		probe(kw.name.Name, kw.val)
	}
}

// keywords are the parameters of sig that may be passed by name.
func keywords(sig *builtins.Signature) []string {
	var out []string
	for _, p := range sig.Params {
		if !p.PositionalOnly {
			out = append(out, p.Name)
		}
	}
	return out
}

// literal is the value of e when e is written out in the source: a
// number, a string, True, False, None, or a list, tuple or dict of them.
func literal(e syntax.Expr) (starlark.Value, bool) {
	switch e := e.(type) {
	case *syntax.Literal:
		switch v := e.Value.(type) {
		case int64:
			return starlark.MakeInt64(v), true
		case *big.Int:
			return starlark.MakeBigInt(v), true
		case float64:
			return starlark.Float(v), true
		case string:
			if e.Token == syntax.BYTES {
				return starlark.Bytes(v), true
			}
			return starlark.String(v), true
		}
	case *syntax.Ident:
		if isUniversal(e) {
			switch e.Name {
			case "True":
				return starlark.True, true
			case "False":
				return starlark.False, true
			case "None":
				return starlark.None, true
			}
		}
	case *syntax.ParenExpr:
		return literal(e.X)
	case *syntax.UnaryExpr:
		if e.Op == syntax.MINUS {
			if v, ok := literal(e.X); ok {
				switch v := v.(type) {
				case starlark.Int:
					return starlark.MakeInt(0).Sub(v), true
				case starlark.Float:
					return -v, true
				}
			}
		}
	case *syntax.ListExpr:
		elems, ok := literals(e.List)
		return starlark.NewList(elems), ok
	case *syntax.TupleExpr:
		elems, ok := literals(e.List)
		return starlark.Tuple(elems), ok
	case *syntax.DictExpr:
		d := starlark.NewDict(len(e.List))
		for _, entry := range e.List {
			kv := entry.(*syntax.DictEntry)
			k, ok1 := literal(kv.Key)
			v, ok2 := literal(kv.Value)
			if !ok1 || !ok2 || d.SetKey(k, v) != nil {
				return nil, false
			}
		}
		return d, true
	}
	return nil, false
}

func literals(es []syntax.Expr) ([]starlark.Value, bool) {
	out := make([]starlark.Value, len(es))
	for i, e := range es {
		v, ok := literal(e)
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// checkCtx reports the uses of the entry point's ctx that the run's ctx,
// or the declaration's parameters, do not have. It is called once the
// file has run and declared itself; entry is the run function.
func checkCtx(info *staticInfo, d *Declaration) []Diagnostic {
	fn, ok := d.Entry().(*starlark.Function)
	if !ok || fn.NumParams() == 0 {
		return nil
	}
	_, param := fn.Param(0)
	var names []string
	for _, p := range d.Params {
		names = append(names, p.Name)
	}
	var diags []Diagnostic
	for _, u := range info.ctxUses {
		if u.param != param {
			continue
		}
		switch {
		case !u.params && !ctxShape.Has(u.name):
			diags = append(diags, at(u.pos, fmt.Sprintf("ctx has no field %s%s; its fields are %s",
				u.name, suggest(u.name, ctxShape.Fields, "."), strings.Join(ctxShape.Fields, ", "))))
		case u.params && d.Param(u.name) == nil:
			declared := "declares no parameters"
			if len(names) > 0 {
				declared = "declares " + strings.Join(names, ", ")
			}
			diags = append(diags, at(u.pos, fmt.Sprintf("ctx.params has no parameter %s%s: playbook %q %s",
				u.name, suggest(u.name, names, "."), d.Name, declared)))
		}
	}
	return diags
}
