using System.Globalization;
using System.Text;
using System.Text.Json;

namespace FineTunePlatform.OpenWeights;

/// <summary>A chat template that cannot be parsed or rendered, with where and why.</summary>
public sealed class TemplateException(string message) : Exception(message);

/// <summary>
/// An interpreter for the subset of Jinja2 that Hugging Face chat templates use, rendering as transformers'
/// apply_chat_template does (jinja2's sandboxed environment with trim_blocks and lstrip_blocks, its own tojson, the
/// raise_exception and strftime_now globals). Supported: text, {{ }}, {% if/elif/else %}, {% for x in y [if c] %} with
/// loop.* and else, {% set %} (names and namespace attributes; loop bodies scope their sets as Jinja does),
/// {% break/continue %}, {% generation %}, comments, whitespace control (-), literals (strings, numbers, lists, dicts),
/// attribute/subscript/slice access, calls, filters, tests, and Python's string and dict methods templates call. What
/// is outside the subset is refused at parse time with its position, never silently mis-rendered.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly List<Node> _nodes;

    private JinjaTemplate(List<Node> nodes) => _nodes = nodes;

    public static JinjaTemplate Parse(string source) => new(new Parser(Lexer.Tokenize(source)).ParseTemplate());

    /// <summary>Renders with the given variables (JSON-like values: string, bool, long/int/double, null, lists, dictionaries).</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var output = new StringBuilder();
        var scope = new Scope(null);
        foreach (var (name, value) in variables)
        {
            scope.Set(name, Values.FromClr(value));
        }

        scope.Set("raise_exception", new Callable((args, _) => throw new TemplateException("The chat template raised an exception: " + Values.ToText(args.FirstOrDefault()))));
        scope.Set("namespace", new Callable((_, kwargs) => new Namespace(new Dictionary<string, object?>(kwargs))));
        scope.Set("range", new Callable((args, _) => Builtins.Range(args)));
        scope.Set("strftime_now", new Callable((args, _) => Builtins.StrftimeNow(Values.ToText(args[0]))));
        try
        {
            Interpreter.Execute(_nodes, scope, output);
        }
        catch (LoopControl)
        {
            throw new TemplateException("break or continue outside a loop.");
        }

        return output.ToString();
    }

    // ================================================================= values

    /// <summary>Jinja's undefined: prints as "", is false, and fails when its attributes are used.</summary>
    internal sealed class Undefined(string name)
    {
        public string Name { get; } = name;
    }

    internal sealed class Namespace(Dictionary<string, object?> attributes)
    {
        public Dictionary<string, object?> Attributes { get; } = attributes;
    }

    internal sealed class Callable(Func<List<object?>, Dictionary<string, object?>, object?> invoke)
    {
        public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs) => invoke(args, kwargs);
    }

    private sealed class LoopControl(bool isBreak) : Exception
    {
        public bool IsBreak { get; } = isBreak;
    }

    internal static class Values
    {
        /// <summary>Normalises CLR inputs: ints to long, lists to List, dictionaries to insertion-ordered Dictionary.</summary>
        public static object? FromClr(object? value) => value switch
        {
            null => null,
            string or bool or long or double or Undefined or Namespace or Callable => value,
            int i => (long)i,
            float f => (double)f,
            JsonElement json => FromJson(json),
            IDictionary<string, object?> map => map.ToDictionary(entry => entry.Key, entry => FromClr(entry.Value)),
            IReadOnlyDictionary<string, object?> map => map.ToDictionary(entry => entry.Key, entry => FromClr(entry.Value)),
            System.Collections.IEnumerable items => items.Cast<object?>().Select(FromClr).ToList(),
            _ => throw new TemplateException($"A {value.GetType().Name} cannot be passed to a chat template."),
        };

        private static object? FromJson(JsonElement json) => json.ValueKind switch
        {
            JsonValueKind.String => json.GetString(),
            JsonValueKind.Number => json.TryGetInt64(out var l) ? (object)l : json.GetDouble(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Array => json.EnumerateArray().Select(FromJson).ToList(),
            JsonValueKind.Object => json.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value)),
            _ => null,
        };

        public static bool Truthy(object? value) => value switch
        {
            null or Undefined => false,
            bool b => b,
            long l => l != 0,
            double d => d != 0,
            string s => s.Length > 0,
            List<object?> list => list.Count > 0,
            Dictionary<string, object?> map => map.Count > 0,
            _ => true,
        };

        /// <summary>Python's str(): what {{ }} prints.</summary>
        public static string ToText(object? value) => value switch
        {
            null => "None",
            Undefined => "",
            string s => s,
            _ => Repr(value),
        };

        /// <summary>Python's repr() for the values templates handle.</summary>
        public static string Repr(object? value) => value switch
        {
            null => "None",
            Undefined => "",
            bool b => b ? "True" : "False",
            long l => l.ToString(CultureInfo.InvariantCulture),
            double d => FormatFloat(d),
            string s => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'",
            List<object?> list => "[" + string.Join(", ", list.Select(Repr)) + "]",
            Dictionary<string, object?> map => "{" + string.Join(", ", map.Select(entry => Repr(entry.Key) + ": " + Repr(entry.Value))) + "}",
            Namespace => "<Namespace>",
            _ => value.ToString() ?? "",
        };

        public static string FormatFloat(double d)
        {
            if (double.IsNaN(d))
            {
                return "nan";
            }

            if (double.IsInfinity(d))
            {
                return d > 0 ? "inf" : "-inf";
            }

            if (d == Math.Floor(d) && Math.Abs(d) < 1e16)
            {
                return d.ToString("F1", CultureInfo.InvariantCulture);
            }

            return d.ToString("R", CultureInfo.InvariantCulture);
        }

        public static bool Equal(object? a, object? b) => (a, b) switch
        {
            (null, null) => true,
            (Undefined, Undefined) => true,
            (long x, long y) => x == y,
            (long x, double y) => x == y,
            (double x, long y) => x == y,
            (double x, double y) => x == y,
            (bool x, bool y) => x == y,
            (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(pair => Equal(pair.First, pair.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) => x.Count == y.Count && x.All(entry => y.TryGetValue(entry.Key, out var other) && Equal(entry.Value, other)),
            _ => false,
        };

        /// <summary>Python's json.dumps(ensure_ascii=False) as transformers' tojson filter calls it.</summary>
        public static string ToJson(object? value, int? indent)
        {
            var output = new StringBuilder();
            WriteJson(output, value, indent, 0);
            return output.ToString();
        }

        private static void WriteJson(StringBuilder output, object? value, int? indent, int depth)
        {
            switch (value)
            {
                case null or Undefined:
                    output.Append("null");
                    break;
                case bool b:
                    output.Append(b ? "true" : "false");
                    break;
                case long l:
                    output.Append(l.ToString(CultureInfo.InvariantCulture));
                    break;
                case double d:
                    output.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : FormatFloat(d));
                    break;
                case string s:
                    WriteJsonString(output, s);
                    break;
                case List<object?> list:
                    WriteJsonContainer(output, '[', ']', list.Count, indent, depth, i => WriteJson(output, list[i], indent, depth + 1));
                    break;
                case Dictionary<string, object?> map:
                    var entries = map.ToList();
                    WriteJsonContainer(output, '{', '}', entries.Count, indent, depth, i =>
                    {
                        WriteJsonString(output, entries[i].Key);
                        output.Append(": ");
                        WriteJson(output, entries[i].Value, indent, depth + 1);
                    });
                    break;
                default:
                    throw new TemplateException($"tojson cannot serialise {Repr(value)}.");
            }
        }

        private static void WriteJsonContainer(StringBuilder output, char open, char close, int count, int? indent, int depth, Action<int> item)
        {
            output.Append(open);
            if (count == 0)
            {
                output.Append(close);
                return;
            }

            for (var i = 0; i < count; i++)
            {
                if (indent is { } width)
                {
                    output.Append(i == 0 ? "\n" : ",\n").Append(' ', width * (depth + 1));
                }
                else if (i > 0)
                {
                    output.Append(", ");
                }

                item(i);
            }

            if (indent is { } w)
            {
                output.Append('\n').Append(' ', w * depth);
            }

            output.Append(close);
        }

        private static void WriteJsonString(StringBuilder output, string s)
        {
            output.Append('"');
            foreach (var ch in s)
            {
                switch (ch)
                {
                    case '"': output.Append("\\\""); break;
                    case '\\': output.Append("\\\\"); break;
                    case '\n': output.Append("\\n"); break;
                    case '\r': output.Append("\\r"); break;
                    case '\t': output.Append("\\t"); break;
                    case '\b': output.Append("\\b"); break;
                    case '\f': output.Append("\\f"); break;
                    default:
                        if (ch < 0x20)
                        {
                            output.Append("\\u").Append(((int)ch).ToString("x4", CultureInfo.InvariantCulture));
                        }
                        else
                        {
                            output.Append(ch);
                        }

                        break;
                }
            }

            output.Append('"');
        }
    }

    private static class Builtins
    {
        public static object? Range(List<object?> args)
        {
            long start = 0, stop, step = 1;
            if (args.Count == 1)
            {
                stop = (long)args[0]!;
            }
            else
            {
                start = (long)args[0]!;
                stop = (long)args[1]!;
                if (args.Count > 2)
                {
                    step = (long)args[2]!;
                }
            }

            var list = new List<object?>();
            for (var i = start; step > 0 ? i < stop : i > stop; i += step)
            {
                list.Add(i);
            }

            return list;
        }

        /// <summary>transformers' strftime_now: the current local date formatted by a strftime pattern (the common codes).</summary>
        public static object? StrftimeNow(string format)
        {
            var now = DateTime.Now;
            var output = new StringBuilder();
            for (var i = 0; i < format.Length; i++)
            {
                if (format[i] != '%' || i + 1 == format.Length)
                {
                    output.Append(format[i]);
                    continue;
                }

                var code = format[++i];
                output.Append(code switch
                {
                    'd' => now.ToString("dd", CultureInfo.InvariantCulture),
                    'm' => now.ToString("MM", CultureInfo.InvariantCulture),
                    'Y' => now.ToString("yyyy", CultureInfo.InvariantCulture),
                    'y' => now.ToString("yy", CultureInfo.InvariantCulture),
                    'b' => now.ToString("MMM", CultureInfo.InvariantCulture),
                    'B' => now.ToString("MMMM", CultureInfo.InvariantCulture),
                    'H' => now.ToString("HH", CultureInfo.InvariantCulture),
                    'M' => now.ToString("mm", CultureInfo.InvariantCulture),
                    'S' => now.ToString("ss", CultureInfo.InvariantCulture),
                    'A' => now.ToString("dddd", CultureInfo.InvariantCulture),
                    'a' => now.ToString("ddd", CultureInfo.InvariantCulture),
                    '%' => "%",
                    _ => throw new TemplateException($"strftime_now: %{code} is not supported."),
                });
            }

            return output.ToString();
        }
    }

    // ================================================================= lexer

    private enum TokenKind
    {
        Text,
        OutputStart,
        StatementStart,
        End,
        Name,
        String,
        Integer,
        Float,
        Operator,
        EndOfInput,
    }

    private readonly record struct Token(TokenKind Kind, string Value, int Position);

    private static class Lexer
    {
        private static readonly string[] Operators = ["//", "**", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|", "~", "+", "-", "*", "/", "%", "<", ">", "="];

        /// <summary>
        /// Splits the template into text and tag tokens, applying whitespace control as jinja2 does with
        /// trim_blocks and lstrip_blocks: "-" strips all whitespace on its side; a block or comment tag otherwise
        /// strips the spaces and tabs before it on its line (lstrip_blocks) and the one newline after it (trim_blocks).
        /// </summary>
        public static List<Token> Tokenize(string source)
        {
            var tokens = new List<Token>();
            var position = 0;
            var stripNextText = false;
            var trimNextNewline = false;
            // jinja2's line_starting: whether what the lexer consumed last ended with a newline (the template start,
            // or a tag end whose whitespace control swallowed one); lstrip_blocks applies to a tag on such a line.
            var lineStarting = true;
            while (position < source.Length)
            {
                var next = FindTagStart(source, position);
                var text = source[position..(next < 0 ? source.Length : next)];
                if (stripNextText)
                {
                    var stripped = text.TrimStart();
                    var consumed = text[..(text.Length - stripped.Length)];
                    lineStarting = consumed.EndsWith('\n');
                    text = stripped;
                }
                else if (trimNextNewline && (text.StartsWith('\n') || text.StartsWith("\r\n", StringComparison.Ordinal)))
                {
                    text = text[(text[0] == '\r' ? 2 : 1)..];
                    lineStarting = true;
                }

                stripNextText = trimNextNewline = false;
                if (next < 0)
                {
                    AddText(tokens, text);
                    break;
                }

                var kind = source[next + 1];
                var afterOpen = next + 2;
                var stripBefore = afterOpen < source.Length && source[afterOpen] == '-';
                var keepBefore = afterOpen < source.Length && source[afterOpen] == '+';
                if (stripBefore || keepBefore)
                {
                    afterOpen++;
                }

                if (stripBefore)
                {
                    text = text.TrimEnd();
                }
                else if (kind != '{' && !keepBefore)
                {
                    // lstrip_blocks: only when the tag starts its line (nothing but spaces/tabs before it).
                    var lineStart = text.LastIndexOf('\n') + 1;
                    if (text[lineStart..].All(c => c is ' ' or '\t') && (lineStart > 0 || lineStarting))
                    {
                        text = text[..lineStart];
                    }
                }

                AddText(tokens, text);
                if (kind == '#')
                {
                    var close = source.IndexOf("#}", afterOpen, StringComparison.Ordinal);
                    if (close < 0)
                    {
                        throw new TemplateException($"Unclosed comment at {next}.");
                    }

                    stripNextText = source[close - 1] == '-';
                    trimNextNewline = !stripNextText;
                    lineStarting = false;
                    position = close + 2;
                    continue;
                }

                if (kind == '%' && TryRaw(source, afterOpen, out var rawEnd, out var rawText))
                {
                    AddText(tokens, rawText);
                    position = rawEnd;
                    trimNextNewline = true;
                    lineStarting = false;
                    continue;
                }

                tokens.Add(new Token(kind == '{' ? TokenKind.OutputStart : TokenKind.StatementStart, "", next));
                position = LexExpression(source, afterOpen, kind == '{' ? '}' : '%', tokens, out var stripAfter);
                stripNextText = stripAfter;
                trimNextNewline = !stripAfter && kind == '%';
                lineStarting = false;
            }

            tokens.Add(new Token(TokenKind.EndOfInput, "", source.Length));
            return tokens;
        }

        private static void AddText(List<Token> tokens, string text)
        {
            if (text.Length > 0)
            {
                tokens.Add(new Token(TokenKind.Text, text, 0));
            }
        }

        private static int FindTagStart(string source, int from)
        {
            for (var i = from; i < source.Length - 1; i++)
            {
                if (source[i] == '{' && source[i + 1] is '{' or '%' or '#')
                {
                    return i;
                }
            }

            return -1;
        }

        /// <summary>{% raw %}...{% endraw %}: the text between is kept verbatim.</summary>
        private static bool TryRaw(string source, int afterOpen, out int end, out string text)
        {
            end = 0;
            text = "";
            var i = afterOpen;
            while (i < source.Length && char.IsWhiteSpace(source[i]))
            {
                i++;
            }

            if (string.CompareOrdinal(source, i, "raw", 0, 3) != 0)
            {
                return false;
            }

            var close = source.IndexOf("%}", i, StringComparison.Ordinal);
            var endRaw = source.IndexOf("endraw", close, StringComparison.Ordinal);
            var endTagStart = source.LastIndexOf("{%", endRaw, StringComparison.Ordinal);
            var endTagClose = source.IndexOf("%}", endRaw, StringComparison.Ordinal);
            if (close < 0 || endRaw < 0 || endTagClose < 0)
            {
                throw new TemplateException($"Unclosed raw block at {afterOpen}.");
            }

            text = source[(close + 2)..endTagStart];
            end = endTagClose + 2;
            return true;
        }

        private static int LexExpression(string source, int position, char closer, List<Token> tokens, out bool stripAfter)
        {
            while (true)
            {
                while (position < source.Length && char.IsWhiteSpace(source[position]))
                {
                    position++;
                }

                if (position >= source.Length)
                {
                    throw new TemplateException("A tag is not closed.");
                }

                var c = source[position];
                if (c == '-' && position + 2 < source.Length && source[position + 1] == closer && source[position + 2] == '}')
                {
                    stripAfter = true;
                    tokens.Add(new Token(TokenKind.End, "", position));
                    return position + 3;
                }

                if (c == closer && position + 1 < source.Length && source[position + 1] == '}')
                {
                    stripAfter = false;
                    tokens.Add(new Token(TokenKind.End, "", position));
                    return position + 2;
                }

                if (char.IsLetter(c) || c == '_')
                {
                    var start = position;
                    while (position < source.Length && (char.IsLetterOrDigit(source[position]) || source[position] == '_'))
                    {
                        position++;
                    }

                    tokens.Add(new Token(TokenKind.Name, source[start..position], start));
                    continue;
                }

                if (char.IsDigit(c))
                {
                    var start = position;
                    while (position < source.Length && (char.IsDigit(source[position]) || source[position] == '_'))
                    {
                        position++;
                    }

                    var isFloat = position + 1 < source.Length && source[position] == '.' && char.IsDigit(source[position + 1]);
                    if (isFloat)
                    {
                        position++;
                        while (position < source.Length && char.IsDigit(source[position]))
                        {
                            position++;
                        }
                    }

                    tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, source[start..position].Replace("_", ""), start));
                    continue;
                }

                if (c is '\'' or '"')
                {
                    var (value, end) = ReadString(source, position);
                    tokens.Add(new Token(TokenKind.String, value, position));
                    position = end;
                    continue;
                }

                var op = Operators.FirstOrDefault(candidate => string.CompareOrdinal(source, position, candidate, 0, candidate.Length) == 0)
                    ?? throw new TemplateException($"Unexpected character '{c}' at {position}.");
                tokens.Add(new Token(TokenKind.Operator, op, position));
                position += op.Length;
            }
        }

        /// <summary>A Python string literal with its escapes.</summary>
        private static (string Value, int End) ReadString(string source, int start)
        {
            var quote = source[start];
            var output = new StringBuilder();
            var i = start + 1;
            while (i < source.Length && source[i] != quote)
            {
                if (source[i] == '\\' && i + 1 < source.Length)
                {
                    var e = source[++i];
                    switch (e)
                    {
                        case 'n': output.Append('\n'); break;
                        case 't': output.Append('\t'); break;
                        case 'r': output.Append('\r'); break;
                        case '\\': output.Append('\\'); break;
                        case '\'': output.Append('\''); break;
                        case '"': output.Append('"'); break;
                        case 'u':
                            output.Append((char)int.Parse(source.AsSpan(i + 1, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                            i += 4;
                            break;
                        case '\n': break;
                        default: output.Append('\\').Append(e); break;
                    }

                    i++;
                    continue;
                }

                output.Append(source[i++]);
            }

            if (i >= source.Length)
            {
                throw new TemplateException($"Unterminated string at {start}.");
            }

            return (output.ToString(), i + 1);
        }
    }

    // ================================================================= syntax tree

    private abstract record Node;

    private sealed record TextNode(string Text) : Node;

    private sealed record OutputNode(Expr Value) : Node;

    private sealed record IfNode(List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else) : Node;

    private sealed record ForNode(List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else) : Node;

    private sealed record SetNode(string Name, string? Attribute, Expr Value) : Node;

    private sealed record LoopControlNode(bool IsBreak) : Node;

    private sealed record BlockNode(List<Node> Body) : Node;

    private abstract record Expr;

    private sealed record Literal(object? Value) : Expr;

    private sealed record Variable(string Name) : Expr;

    private sealed record ListExpr(List<Expr> Items) : Expr;

    private sealed record DictExpr(List<(Expr Key, Expr Value)> Items) : Expr;

    private sealed record GetAttr(Expr Target, string Name) : Expr;

    private sealed record GetItem(Expr Target, Expr Index) : Expr;

    private sealed record Slice(Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr;

    private sealed record Call(Expr Target, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;

    private sealed record Filter(Expr Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;

    private sealed record Test(Expr Target, string Name, List<Expr> Args, bool Negated) : Expr;

    private sealed record Unary(string Op, Expr Operand) : Expr;

    private sealed record Binary(string Op, Expr Left, Expr Right) : Expr;

    private sealed record Conditional(Expr Condition, Expr Then, Expr? Else) : Expr;

    // ================================================================= parser

    private sealed class Parser(List<Token> tokens)
    {
        private int _index;

        private Token Current => tokens[_index];

        public List<Node> ParseTemplate()
        {
            var nodes = ParseBody(out var stop);
            if (stop is not null)
            {
                throw new TemplateException($"Unexpected {{% {stop} %}} at {Current.Position}.");
            }

            return nodes;
        }

        /// <summary>Parses nodes until a statement whose keyword is one of `stops` (returned, with the parser at its name) or the end.</summary>
        private List<Node> ParseBody(out string? stop, params string[] stops)
        {
            var nodes = new List<Node>();
            while (true)
            {
                switch (Current.Kind)
                {
                    case TokenKind.EndOfInput:
                        if (stops.Length > 0)
                        {
                            throw new TemplateException($"Missing {{% {stops[^1]} %}}.");
                        }

                        stop = null;
                        return nodes;
                    case TokenKind.Text:
                        nodes.Add(new TextNode(Current.Value));
                        _index++;
                        break;
                    case TokenKind.OutputStart:
                        _index++;
                        nodes.Add(new OutputNode(ParseExpression()));
                        Expect(TokenKind.End);
                        break;
                    case TokenKind.StatementStart:
                        var keyword = tokens[_index + 1];
                        if (keyword.Kind == TokenKind.Name && stops.Contains(keyword.Value))
                        {
                            _index++;
                            stop = keyword.Value;
                            return nodes;
                        }

                        _index++;
                        nodes.Add(ParseStatement());
                        break;
                    default:
                        throw new TemplateException($"Unexpected token at {Current.Position}.");
                }
            }
        }

        private Node ParseStatement()
        {
            var keyword = ExpectName();
            switch (keyword)
            {
                case "if":
                {
                    var branches = new List<(Expr, List<Node>)>();
                    var condition = ParseExpression();
                    Expect(TokenKind.End);
                    List<Node>? otherwise = null;
                    while (true)
                    {
                        var body = ParseBody(out var stop, "elif", "else", "endif");
                        branches.Add((condition, body));
                        _index++;
                        if (stop == "elif")
                        {
                            condition = ParseExpression();
                            Expect(TokenKind.End);
                            continue;
                        }

                        Expect(TokenKind.End);
                        if (stop == "else")
                        {
                            otherwise = ParseBody(out _, "endif");
                            _index++;
                            Expect(TokenKind.End);
                        }

                        return new IfNode(branches, otherwise);
                    }
                }

                case "for":
                {
                    var targets = new List<string> { ExpectName() };
                    while (IsOperator(","))
                    {
                        _index++;
                        targets.Add(ExpectName());
                    }

                    if (ExpectName() != "in")
                    {
                        throw new TemplateException($"Expected 'in' in a for loop at {Current.Position}.");
                    }

                    var iterable = ParseOr(allowConditional: false);
                    Expr? filter = null;
                    if (Current.Kind == TokenKind.Name && Current.Value == "if")
                    {
                        _index++;
                        filter = ParseExpression();
                    }

                    if (Current.Kind == TokenKind.Name && Current.Value == "recursive")
                    {
                        throw new TemplateException("Recursive loops are not supported.");
                    }

                    Expect(TokenKind.End);
                    var body = ParseBody(out var stop, "else", "endfor");
                    _index++;
                    Expect(TokenKind.End);
                    List<Node>? otherwise = null;
                    if (stop == "else")
                    {
                        otherwise = ParseBody(out _, "endfor");
                        _index++;
                        Expect(TokenKind.End);
                    }

                    return new ForNode(targets, iterable, filter, body, otherwise);
                }

                case "set":
                {
                    var name = ExpectName();
                    string? attribute = null;
                    if (IsOperator("."))
                    {
                        _index++;
                        attribute = ExpectName();
                    }

                    if (!IsOperator("="))
                    {
                        throw new TemplateException($"Block assignments ({{% set x %}}...{{% endset %}}) are not supported (at {Current.Position}).");
                    }

                    _index++;
                    var value = ParseExpression();
                    Expect(TokenKind.End);
                    return new SetNode(name, attribute, value);
                }

                case "break" or "continue":
                    Expect(TokenKind.End);
                    return new LoopControlNode(keyword == "break");
                case "generation":
                {
                    // transformers' AssistantTracker marks assistant text; rendering keeps the body as is.
                    Expect(TokenKind.End);
                    var body = ParseBody(out _, "endgeneration");
                    _index++;
                    Expect(TokenKind.End);
                    return new BlockNode(body);
                }

                default:
                    throw new TemplateException($"{{% {keyword} %}} is not supported by this chat-template interpreter (at {Current.Position}).");
            }
        }

        public Expr ParseExpression() => ParseOr(allowConditional: true);

        private Expr ParseOr(bool allowConditional)
        {
            var left = ParseAnd();
            while (IsName("or"))
            {
                _index++;
                left = new Binary("or", left, ParseAnd());
            }

            if (allowConditional && IsName("if"))
            {
                _index++;
                var condition = ParseOr(allowConditional: false);
                Expr? otherwise = null;
                if (IsName("else"))
                {
                    _index++;
                    otherwise = ParseOr(allowConditional: true);
                }

                return new Conditional(condition, left, otherwise);
            }

            return left;
        }

        private Expr ParseAnd()
        {
            var left = ParseNot();
            while (IsName("and"))
            {
                _index++;
                left = new Binary("and", left, ParseNot());
            }

            return left;
        }

        private Expr ParseNot()
        {
            if (IsName("not"))
            {
                _index++;
                return new Unary("not", ParseNot());
            }

            return ParseCompare();
        }

        private Expr ParseCompare()
        {
            var left = ParseMath1();
            while (true)
            {
                if (Current.Kind == TokenKind.Operator && Current.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
                {
                    var op = Current.Value;
                    _index++;
                    left = new Binary(op, left, ParseMath1());
                }
                else if (IsName("in"))
                {
                    _index++;
                    left = new Binary("in", left, ParseMath1());
                }
                else if (IsName("not") && tokens[_index + 1].Kind == TokenKind.Name && tokens[_index + 1].Value == "in")
                {
                    _index += 2;
                    left = new Unary("not", new Binary("in", left, ParseMath1()));
                }
                else
                {
                    return left;
                }
            }
        }

        private Expr ParseMath1()
        {
            var left = ParseConcat();
            while (Current.Kind == TokenKind.Operator && Current.Value is "+" or "-")
            {
                var op = Current.Value;
                _index++;
                left = new Binary(op, left, ParseConcat());
            }

            return left;
        }

        private Expr ParseConcat()
        {
            var left = ParseMath2();
            while (IsOperator("~"))
            {
                _index++;
                left = new Binary("~", left, ParseMath2());
            }

            return left;
        }

        private Expr ParseMath2()
        {
            var left = ParsePow();
            while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
            {
                var op = Current.Value;
                _index++;
                left = new Binary(op, left, ParsePow());
            }

            return left;
        }

        private Expr ParsePow()
        {
            var left = ParseUnary();
            while (IsOperator("**"))
            {
                _index++;
                left = new Binary("**", left, ParseUnary());
            }

            return left;
        }

        private Expr ParseUnary()
        {
            if (Current.Kind == TokenKind.Operator && Current.Value is "-" or "+")
            {
                var op = Current.Value;
                _index++;
                return ParseFilters(new Unary(op, ParseUnary()));
            }

            return ParseFilters(ParsePostfix(ParsePrimary()));
        }

        /// <summary>x | filter(args) and x is [not] test(args), left to right, as jinja2's parse_filter_expr.</summary>
        private Expr ParseFilters(Expr target)
        {
            while (true)
            {
                if (IsOperator("|"))
                {
                    _index++;
                    var name = ExpectName();
                    var (args, kwargs) = IsOperator("(") ? ParseArguments() : ([], []);
                    target = ParsePostfix(new Filter(target, name, args, kwargs));
                }
                else if (IsName("is"))
                {
                    _index++;
                    var negated = false;
                    if (IsName("not"))
                    {
                        _index++;
                        negated = true;
                    }

                    var name = ExpectName();
                    var args = new List<Expr>();
                    if (IsOperator("("))
                    {
                        args = ParseArguments().Args;
                    }
                    else if (Current.Kind is TokenKind.Integer or TokenKind.String or TokenKind.Float || (Current.Kind == TokenKind.Name && Current.Value is not ("and" or "or" or "else" or "if" or "in" or "not" or "is")))
                    {
                        args.Add(ParsePrimary());
                    }

                    target = new Test(target, name, args, negated);
                }
                else
                {
                    return target;
                }
            }
        }

        private Expr ParsePostfix(Expr target)
        {
            while (true)
            {
                if (IsOperator("."))
                {
                    _index++;
                    if (Current.Kind == TokenKind.Integer)
                    {
                        target = new GetItem(target, new Literal(long.Parse(Current.Value, CultureInfo.InvariantCulture)));
                        _index++;
                    }
                    else
                    {
                        target = new GetAttr(target, ExpectName());
                    }
                }
                else if (IsOperator("["))
                {
                    _index++;
                    Expr? start = null, stop = null, step = null;
                    var isSlice = false;
                    if (!IsOperator(":"))
                    {
                        start = ParseExpression();
                    }

                    if (IsOperator(":"))
                    {
                        isSlice = true;
                        _index++;
                        if (!IsOperator("]") && !IsOperator(":"))
                        {
                            stop = ParseExpression();
                        }

                        if (IsOperator(":"))
                        {
                            _index++;
                            if (!IsOperator("]"))
                            {
                                step = ParseExpression();
                            }
                        }
                    }

                    ExpectOperator("]");
                    target = isSlice ? new Slice(target, start, stop, step) : new GetItem(target, start!);
                }
                else if (IsOperator("("))
                {
                    var (args, kwargs) = ParseArguments();
                    target = new Call(target, args, kwargs);
                }
                else
                {
                    return target;
                }
            }
        }

        private (List<Expr> Args, List<(string, Expr)> Kwargs) ParseArguments()
        {
            ExpectOperator("(");
            var args = new List<Expr>();
            var kwargs = new List<(string, Expr)>();
            while (!IsOperator(")"))
            {
                if (Current.Kind == TokenKind.Name && tokens[_index + 1].Kind == TokenKind.Operator && tokens[_index + 1].Value == "=")
                {
                    var name = Current.Value;
                    _index += 2;
                    kwargs.Add((name, ParseExpression()));
                }
                else
                {
                    args.Add(ParseExpression());
                }

                if (!IsOperator(","))
                {
                    break;
                }

                _index++;
            }

            ExpectOperator(")");
            return (args, kwargs);
        }

        private Expr ParsePrimary()
        {
            var token = Current;
            _index++;
            switch (token.Kind)
            {
                case TokenKind.String:
                    var text = token.Value;
                    // Adjacent string literals concatenate, as in Python.
                    while (Current.Kind == TokenKind.String)
                    {
                        text += Current.Value;
                        _index++;
                    }

                    return new Literal(text);
                case TokenKind.Integer:
                    return new Literal(long.Parse(token.Value, CultureInfo.InvariantCulture));
                case TokenKind.Float:
                    return new Literal(double.Parse(token.Value, CultureInfo.InvariantCulture));
                case TokenKind.Name:
                    return token.Value switch
                    {
                        "true" or "True" => new Literal(true),
                        "false" or "False" => new Literal(false),
                        "none" or "None" => new Literal(null),
                        _ => new Variable(token.Value),
                    };
                case TokenKind.Operator when token.Value == "(":
                {
                    var inner = ParseExpression();
                    if (IsOperator(","))
                    {
                        // A tuple: represented as a list.
                        var items = new List<Expr> { inner };
                        while (IsOperator(","))
                        {
                            _index++;
                            if (IsOperator(")"))
                            {
                                break;
                            }

                            items.Add(ParseExpression());
                        }

                        ExpectOperator(")");
                        return new ListExpr(items);
                    }

                    ExpectOperator(")");
                    return inner;
                }

                case TokenKind.Operator when token.Value == "[":
                {
                    var items = new List<Expr>();
                    while (!IsOperator("]"))
                    {
                        items.Add(ParseExpression());
                        if (!IsOperator(","))
                        {
                            break;
                        }

                        _index++;
                    }

                    ExpectOperator("]");
                    return new ListExpr(items);
                }

                case TokenKind.Operator when token.Value == "{":
                {
                    var items = new List<(Expr, Expr)>();
                    while (!IsOperator("}"))
                    {
                        var key = ParseExpression();
                        ExpectOperator(":");
                        items.Add((key, ParseExpression()));
                        if (!IsOperator(","))
                        {
                            break;
                        }

                        _index++;
                    }

                    ExpectOperator("}");
                    return new DictExpr(items);
                }

                default:
                    throw new TemplateException($"Unexpected '{token.Value}' at {token.Position}.");
            }
        }

        private bool IsOperator(string op) => Current.Kind == TokenKind.Operator && Current.Value == op;

        private bool IsName(string name) => Current.Kind == TokenKind.Name && Current.Value == name;

        private void ExpectOperator(string op)
        {
            if (!IsOperator(op))
            {
                throw new TemplateException($"Expected '{op}' at {Current.Position}.");
            }

            _index++;
        }

        private string ExpectName()
        {
            if (Current.Kind != TokenKind.Name)
            {
                throw new TemplateException($"Expected a name at {Current.Position}.");
            }

            return tokens[_index++].Value;
        }

        private void Expect(TokenKind kind)
        {
            if (Current.Kind != kind)
            {
                throw new TemplateException($"Expected the end of the tag at {Current.Position}.");
            }

            _index++;
        }
    }

    // ================================================================= interpreter

    private sealed class Scope(Scope? parent)
    {
        private readonly Dictionary<string, object?> _values = new(StringComparer.Ordinal);

        public object? Get(string name)
        {
            for (var scope = this; scope is not null; scope = scope.Parent)
            {
                if (scope._values.TryGetValue(name, out var value))
                {
                    return value;
                }
            }

            return new Undefined(name);
        }

        public Scope? Parent { get; } = parent;

        public void Set(string name, object? value) => _values[name] = value;
    }

    private static class Interpreter
    {
        public static void Execute(List<Node> nodes, Scope scope, StringBuilder output)
        {
            foreach (var node in nodes)
            {
                switch (node)
                {
                    case TextNode text:
                        output.Append(text.Text);
                        break;
                    case OutputNode print:
                        output.Append(Values.ToText(Evaluate(print.Value, scope)));
                        break;
                    case IfNode conditional:
                        var taken = false;
                        foreach (var (condition, body) in conditional.Branches)
                        {
                            if (Values.Truthy(Evaluate(condition, scope)))
                            {
                                Execute(body, scope, output);
                                taken = true;
                                break;
                            }
                        }

                        if (!taken && conditional.Else is not null)
                        {
                            Execute(conditional.Else, scope, output);
                        }

                        break;
                    case ForNode loop:
                        ExecuteFor(loop, scope, output);
                        break;
                    case SetNode set:
                        var value = Evaluate(set.Value, scope);
                        if (set.Attribute is null)
                        {
                            scope.Set(set.Name, value);
                        }
                        else if (scope.Get(set.Name) is Namespace ns)
                        {
                            ns.Attributes[set.Attribute] = value;
                        }
                        else
                        {
                            throw new TemplateException($"Cannot assign {set.Name}.{set.Attribute}: {set.Name} is not a namespace.");
                        }

                        break;
                    case LoopControlNode control:
                        throw new LoopControl(control.IsBreak);
                    case BlockNode block:
                        Execute(block.Body, scope, output);
                        break;
                }
            }
        }

        private static void ExecuteFor(ForNode loop, Scope scope, StringBuilder output)
        {
            var iterable = Evaluate(loop.Iterable, scope);
            var items = iterable switch
            {
                List<object?> list => list.ToList(),
                Dictionary<string, object?> map => map.Keys.Cast<object?>().ToList(),
                string s => s.Select(ch => (object?)ch.ToString()).ToList(),
                null or Undefined => [],
                _ => throw new TemplateException($"Cannot loop over {Values.Repr(iterable)}."),
            };

            if (loop.Filter is not null)
            {
                items = items.Where(item =>
                {
                    var probe = new Scope(scope);
                    Bind(probe, loop.Targets, item);
                    return Values.Truthy(Evaluate(loop.Filter, probe));
                }).ToList();
            }

            if (items.Count == 0)
            {
                if (loop.Else is not null)
                {
                    Execute(loop.Else, scope, output);
                }

                return;
            }

            for (var i = 0; i < items.Count; i++)
            {
                // Each iteration's sets stay inside the loop, as jinja2 scopes them.
                var inner = new Scope(scope);
                Bind(inner, loop.Targets, items[i]);
                inner.Set("loop", new Dictionary<string, object?>
                {
                    ["index"] = (long)(i + 1),
                    ["index0"] = (long)i,
                    ["revindex"] = (long)(items.Count - i),
                    ["revindex0"] = (long)(items.Count - i - 1),
                    ["first"] = i == 0,
                    ["last"] = i == items.Count - 1,
                    ["length"] = (long)items.Count,
                    ["previtem"] = i > 0 ? items[i - 1] : new Undefined("previtem"),
                    ["nextitem"] = i + 1 < items.Count ? items[i + 1] : new Undefined("nextitem"),
                });
                try
                {
                    Execute(loop.Body, inner, output);
                }
                catch (LoopControl control)
                {
                    if (control.IsBreak)
                    {
                        break;
                    }
                }
            }
        }

        private static void Bind(Scope scope, List<string> targets, object? item)
        {
            if (targets.Count == 1)
            {
                scope.Set(targets[0], item);
                return;
            }

            if (item is not List<object?> parts || parts.Count != targets.Count)
            {
                throw new TemplateException($"Cannot unpack {Values.Repr(item)} into {targets.Count} names.");
            }

            for (var i = 0; i < targets.Count; i++)
            {
                scope.Set(targets[i], parts[i]);
            }
        }

        private static object? Evaluate(Expr expr, Scope scope)
        {
            switch (expr)
            {
                case Literal literal:
                    return literal.Value;
                case Variable variable:
                    return scope.Get(variable.Name);
                case ListExpr list:
                    return list.Items.Select(item => Evaluate(item, scope)).ToList();
                case DictExpr dict:
                    var map = new Dictionary<string, object?>();
                    foreach (var (key, value) in dict.Items)
                    {
                        map[Values.ToText(Evaluate(key, scope))] = Evaluate(value, scope);
                    }

                    return map;
                case GetAttr attr:
                    return Attribute(Evaluate(attr.Target, scope), attr.Name);
                case GetItem item:
                    return Item(Evaluate(item.Target, scope), Evaluate(item.Index, scope));
                case Slice slice:
                    return SliceOf(Evaluate(slice.Target, scope), slice.Start is null ? null : Evaluate(slice.Start, scope),
                        slice.Stop is null ? null : Evaluate(slice.Stop, scope), slice.Step is null ? null : Evaluate(slice.Step, scope));
                case Call call:
                    var callee = Evaluate(call.Target, scope);
                    var args = call.Args.Select(arg => Evaluate(arg, scope)).ToList();
                    var kwargs = call.Kwargs.ToDictionary(kw => kw.Name, kw => Evaluate(kw.Value, scope));
                    return callee is Callable callable ? callable.Invoke(args, kwargs)
                        : throw new TemplateException(callee is Undefined u ? $"'{u.Name}' is undefined." : $"{Values.Repr(callee)} is not callable.");
                case Filter filter:
                    return Filters.Apply(filter.Name, Evaluate(filter.Target, scope), filter.Args.Select(arg => Evaluate(arg, scope)).ToList(),
                        filter.Kwargs.ToDictionary(kw => kw.Name, kw => Evaluate(kw.Value, scope)));
                case Test test:
                    var result = Tests.Apply(test.Name, Evaluate(test.Target, scope), test.Args.Select(arg => Evaluate(arg, scope)).ToList());
                    return test.Negated ? !result : result;
                case Unary unary:
                    var operand = Evaluate(unary.Operand, scope);
                    return unary.Op switch
                    {
                        "not" => !Values.Truthy(operand),
                        "-" => operand switch { long l => (object)(-l), double d => -d, _ => throw new TemplateException($"Cannot negate {Values.Repr(operand)}.") },
                        _ => operand,
                    };
                case Binary binary:
                    return EvaluateBinary(binary, scope);
                case Conditional conditional:
                    return Values.Truthy(Evaluate(conditional.Condition, scope)) ? Evaluate(conditional.Then, scope)
                        : conditional.Else is null ? new Undefined("else") : Evaluate(conditional.Else, scope);
                default:
                    throw new TemplateException("Unknown expression.");
            }
        }

        private static object? EvaluateBinary(Binary binary, Scope scope)
        {
            if (binary.Op == "and")
            {
                var left = Evaluate(binary.Left, scope);
                return Values.Truthy(left) ? Evaluate(binary.Right, scope) : left;
            }

            if (binary.Op == "or")
            {
                var left = Evaluate(binary.Left, scope);
                return Values.Truthy(left) ? left : Evaluate(binary.Right, scope);
            }

            var a = Evaluate(binary.Left, scope);
            var b = Evaluate(binary.Right, scope);
            switch (binary.Op)
            {
                case "~":
                    return Values.ToText(a) + Values.ToText(b);
                case "==":
                    return Values.Equal(a, b);
                case "!=":
                    return !Values.Equal(a, b);
                case "in":
                    return b switch
                    {
                        string s when a is string sub => s.Contains(sub, StringComparison.Ordinal),
                        List<object?> list => list.Any(item => Values.Equal(item, a)),
                        Dictionary<string, object?> map => a is string key && map.ContainsKey(key),
                        _ => throw new TemplateException($"'in' needs a string, list or mapping on its right, not {Values.Repr(b)}."),
                    };
                case "+" when a is string x && b is string y:
                    return x + y;
                case "+" when a is List<object?> x && b is List<object?> y:
                    return x.Concat(y).ToList();
                case "*" when a is string s && b is long n:
                    return string.Concat(Enumerable.Repeat(s, (int)Math.Max(0, n)));
                case "<" or ">" or "<=" or ">=" when a is string x && b is string y:
                    var order = string.CompareOrdinal(x, y);
                    return binary.Op switch { "<" => order < 0, ">" => order > 0, "<=" => order <= 0, _ => order >= 0 };
            }

            if (a is bool ba)
            {
                a = ba ? 1L : 0L;
            }

            if (b is bool bb)
            {
                b = bb ? 1L : 0L;
            }

            if (a is long la && b is long lb)
            {
                return binary.Op switch
                {
                    "+" => la + lb,
                    "-" => la - lb,
                    "*" => la * lb,
                    "/" => (double)la / lb,
                    "//" => (long)Math.Floor((double)la / lb),
                    "%" => ((la % lb) + lb) % lb,
                    "**" => (long)Math.Pow(la, lb),
                    "<" => la < lb,
                    ">" => la > lb,
                    "<=" => la <= lb,
                    ">=" => la >= lb,
                    _ => throw new TemplateException($"Unknown operator {binary.Op}."),
                };
            }

            if (a is long or double && b is long or double)
            {
                var (x, y) = (Convert.ToDouble(a, CultureInfo.InvariantCulture), Convert.ToDouble(b, CultureInfo.InvariantCulture));
                return binary.Op switch
                {
                    "+" => x + y,
                    "-" => x - y,
                    "*" => x * y,
                    "/" => x / y,
                    "//" => Math.Floor(x / y),
                    "%" => x - (y * Math.Floor(x / y)),
                    "**" => Math.Pow(x, y),
                    "<" => x < y,
                    ">" => x > y,
                    "<=" => x <= y,
                    ">=" => x >= y,
                    _ => throw new TemplateException($"Unknown operator {binary.Op}."),
                };
            }

            throw new TemplateException($"Unsupported operand types for {binary.Op}: {Values.Repr(a)} and {Values.Repr(b)}.");
        }

        /// <summary>x.name: a mapping's key (jinja2 falls back from attribute to item), a namespace's attribute, or a method.</summary>
        public static object? Attribute(object? target, string name)
        {
            switch (target)
            {
                case Undefined undefined:
                    throw new TemplateException($"'{undefined.Name}' is undefined (reading .{name}).");
                case Dictionary<string, object?> map:
                    if (map.TryGetValue(name, out var value))
                    {
                        return value;
                    }

                    return (object?)Methods.ForMapping(map, name) ?? new Undefined(name);
                case Namespace ns:
                    return ns.Attributes.TryGetValue(name, out var attribute) ? attribute : new Undefined(name);
                case string s:
                    return (object?)Methods.ForString(s, name) ?? new Undefined(name);
                case List<object?> list:
                    return (object?)Methods.ForList(list, name) ?? new Undefined(name);
                default:
                    return new Undefined(name);
            }
        }

        public static object? Item(object? target, object? index)
        {
            switch (target)
            {
                case Undefined undefined:
                    throw new TemplateException($"'{undefined.Name}' is undefined (reading [{Values.Repr(index)}]).");
                case List<object?> list when index is long i:
                    var at = i < 0 ? list.Count + i : i;
                    return at >= 0 && at < list.Count ? list[(int)at] : new Undefined($"[{i}]");
                case string s when index is long i:
                    var position = i < 0 ? s.Length + i : i;
                    return position >= 0 && position < s.Length ? s[(int)position].ToString() : new Undefined($"[{i}]");
                case Dictionary<string, object?> map when index is string key:
                    return map.TryGetValue(key, out var value) ? value : new Undefined(key);
                case Namespace ns when index is string key:
                    return ns.Attributes.TryGetValue(key, out var attribute) ? attribute : new Undefined(key);
                default:
                    return index is string name ? Attribute(target, name) : new Undefined(Values.Repr(index));
            }
        }

        private static object? SliceOf(object? target, object? start, object? stop, object? step)
        {
            List<object?> items = target switch
            {
                List<object?> list => list,
                string s => s.Select(ch => (object?)ch.ToString()).ToList(),
                _ => throw new TemplateException($"Cannot slice {Values.Repr(target)}."),
            };
            var n = items.Count;
            var by = step is long st ? st : 1;
            if (by == 0)
            {
                throw new TemplateException("A slice step cannot be zero.");
            }

            long Clamp(object? value, long fallback, bool isStart)
            {
                if (value is not long v)
                {
                    return fallback;
                }

                if (v < 0)
                {
                    v += n;
                }

                return by > 0 ? Math.Clamp(v, 0, n) : Math.Clamp(v, -1, n - 1);
            }

            var first = Clamp(start, by > 0 ? 0 : n - 1, true);
            var last = Clamp(stop, by > 0 ? n : -1, false);
            var result = new List<object?>();
            for (var i = first; by > 0 ? i < last : i > last; i += by)
            {
                result.Add(items[(int)i]);
            }

            return target is string ? string.Concat(result.Cast<string>()) : result;
        }
    }

    private static class Methods
    {
        public static Callable? ForString(string s, string name) => name switch
        {
            "strip" => new Callable((args, _) => args.Count > 0 && args[0] is string chars ? s.Trim(chars.ToCharArray()) : s.Trim()),
            "lstrip" => new Callable((args, _) => args.Count > 0 && args[0] is string chars ? s.TrimStart(chars.ToCharArray()) : s.TrimStart()),
            "rstrip" => new Callable((args, _) => args.Count > 0 && args[0] is string chars ? s.TrimEnd(chars.ToCharArray()) : s.TrimEnd()),
            "startswith" => new Callable((args, _) => args[0] is List<object?> options ? options.Any(o => s.StartsWith((string)o!, StringComparison.Ordinal)) : s.StartsWith((string)args[0]!, StringComparison.Ordinal)),
            "endswith" => new Callable((args, _) => args[0] is List<object?> options ? options.Any(o => s.EndsWith((string)o!, StringComparison.Ordinal)) : s.EndsWith((string)args[0]!, StringComparison.Ordinal)),
            "split" => new Callable((args, _) => (args.Count == 0 || args[0] is null
                ? s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
                : s.Split((string)args[0]!)).Select(part => (object?)part).ToList()),
            "upper" => new Callable((_, _) => s.ToUpperInvariant()),
            "lower" => new Callable((_, _) => s.ToLowerInvariant()),
            "title" => new Callable((_, _) => Filters.Title(s)),
            "capitalize" => new Callable((_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
            "replace" => new Callable((args, _) => s.Replace((string)args[0]!, (string)args[1]!, StringComparison.Ordinal)),
            "find" => new Callable((args, _) => (long)s.IndexOf((string)args[0]!, StringComparison.Ordinal)),
            "count" => new Callable((args, _) => (long)((s.Length - s.Replace((string)args[0]!, "", StringComparison.Ordinal).Length) / Math.Max(1, ((string)args[0]!).Length))),
            "join" => new Callable((args, _) => string.Join(s, ((List<object?>)args[0]!).Select(Values.ToText))),
            _ => null,
        };

        public static Callable? ForMapping(Dictionary<string, object?> map, string name) => name switch
        {
            "items" => new Callable((_, _) => map.Select(entry => (object?)new List<object?> { entry.Key, entry.Value }).ToList()),
            "keys" => new Callable((_, _) => map.Keys.Select(key => (object?)key).ToList()),
            "values" => new Callable((_, _) => map.Values.ToList()),
            "get" => new Callable((args, _) => map.TryGetValue((string)args[0]!, out var value) ? value : args.Count > 1 ? args[1] : null),
            _ => null,
        };

        public static Callable? ForList(List<object?> list, string name) => name switch
        {
            "index" => new Callable((args, _) => (long)list.FindIndex(item => Values.Equal(item, args[0]))),
            "count" => new Callable((args, _) => (long)list.Count(item => Values.Equal(item, args[0]))),
            _ => null,
        };
    }

    private static class Filters
    {
        public static object? Apply(string name, object? value, List<object?> args, Dictionary<string, object?> kwargs)
        {
            switch (name)
            {
                case "length" or "count":
                    return value switch
                    {
                        string s => (long)s.Length,
                        List<object?> list => (long)list.Count,
                        Dictionary<string, object?> map => (long)map.Count,
                        _ => throw new TemplateException($"{Values.Repr(value)} has no length."),
                    };
                case "tojson":
                    var indent = kwargs.TryGetValue("indent", out var width) && width is long w ? (int?)w : args.Count > 0 && args[0] is long a ? (int)a : null;
                    return Values.ToJson(value, indent);
                case "trim":
                    return Values.ToText(value).Trim();
                case "upper":
                    return Values.ToText(value).ToUpperInvariant();
                case "lower":
                    return Values.ToText(value).ToLowerInvariant();
                case "title":
                    return Title(Values.ToText(value));
                case "capitalize":
                    var text = Values.ToText(value);
                    return text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..].ToLowerInvariant();
                case "string":
                    return Values.ToText(value);
                case "safe" or "e" or "escape" when name == "safe":
                    return value;
                case "int":
                    return value switch { long l => l, double d => (long)d, string s when long.TryParse(s, CultureInfo.InvariantCulture, out var parsed) => parsed, bool b => b ? 1L : 0L, _ => 0L };
                case "float":
                    return value switch { long l => (double)l, double d => d, string s when double.TryParse(s, CultureInfo.InvariantCulture, out var parsed) => parsed, _ => 0.0 };
                case "default" or "d":
                    var fallback = args.Count > 0 ? args[0] : "";
                    var boolean = args.Count > 1 && Values.Truthy(args[1]);
                    return value is Undefined || (boolean && !Values.Truthy(value)) ? fallback : value;
                case "first":
                    return value switch { List<object?> { Count: > 0 } list => list[0], string { Length: > 0 } s => s[0].ToString(), _ => new Undefined("first") };
                case "last":
                    return value switch { List<object?> { Count: > 0 } list => list[^1], string { Length: > 0 } s => s[^1].ToString(), _ => new Undefined("last") };
                case "join":
                    var separator = args.Count > 0 ? Values.ToText(args[0]) : "";
                    return string.Join(separator, AsList(value).Select(Values.ToText));
                case "list":
                    return AsList(value);
                case "reverse":
                    return value is string str ? new string(str.Reverse().ToArray()) : Enumerable.Reverse(AsList(value)).ToList();
                case "items":
                    return value is Dictionary<string, object?> entries ? entries.Select(entry => (object?)new List<object?> { entry.Key, entry.Value }).ToList() : [];
                case "replace":
                    return Values.ToText(value).Replace(Values.ToText(args[0]), Values.ToText(args[1]), StringComparison.Ordinal);
                case "abs":
                    return value switch { long l => (object)Math.Abs(l), double d => Math.Abs(d), _ => value };
                case "selectattr" or "rejectattr":
                {
                    var attribute = Values.ToText(args[0]);
                    var keep = name == "selectattr";
                    return AsList(value).Where(item =>
                    {
                        var attributeValue = Interpreter.Attribute(item, attribute);
                        var passes = args.Count > 1 ? Tests.Apply(Values.ToText(args[1]), attributeValue, args.Skip(2).ToList()) : Values.Truthy(attributeValue);
                        return passes == keep;
                    }).ToList();
                }

                case "map":
                    if (kwargs.TryGetValue("attribute", out var mapped))
                    {
                        return AsList(value).Select(item => Interpreter.Attribute(item, Values.ToText(mapped))).ToList();
                    }

                    return AsList(value).Select(item => Apply(Values.ToText(args[0]), item, args.Skip(1).ToList(), [])).ToList();
                case "indent":
                {
                    var amount = args.Count > 0 && args[0] is long n ? (int)n : 4;
                    var lines = Values.ToText(value).Split('\n');
                    return string.Join("\n", lines.Select((line, i) => i == 0 || line.Length == 0 ? line : new string(' ', amount) + line));
                }

                default:
                    throw new TemplateException($"The filter '{name}' is not supported.");
            }
        }

        private static List<object?> AsList(object? value) => value switch
        {
            List<object?> list => list,
            string s => s.Select(ch => (object?)ch.ToString()).ToList(),
            Dictionary<string, object?> map => map.Keys.Cast<object?>().ToList(),
            null or Undefined => [],
            _ => [value],
        };

        public static string Title(string s)
        {
            var output = new StringBuilder(s.Length);
            var previousIsLetter = false;
            foreach (var ch in s)
            {
                output.Append(previousIsLetter ? char.ToLowerInvariant(ch) : char.ToUpperInvariant(ch));
                previousIsLetter = char.IsLetter(ch);
            }

            return output.ToString();
        }
    }

    private static class Tests
    {
        public static bool Apply(string name, object? value, List<object?> args) => name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "string" => value is string,
            "number" => value is long or double,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "mapping" => value is Dictionary<string, object?>,
            "sequence" => value is List<object?> or string,
            "iterable" => value is List<object?> or string or Dictionary<string, object?>,
            "callable" => value is Callable,
            "even" => value is long l && l % 2 == 0,
            "odd" => value is long o && o % 2 != 0,
            "divisibleby" => value is long d && args.Count > 0 && args[0] is long by && d % by == 0,
            "equalto" or "eq" or "==" => args.Count > 0 && Values.Equal(value, args[0]),
            "ne" or "!=" => args.Count > 0 && !Values.Equal(value, args[0]),
            "in" => args.Count > 0 && args[0] is List<object?> list && list.Any(item => Values.Equal(item, value)),
            "lower" => value is string s && s == s.ToLowerInvariant(),
            "upper" => value is string u && u == u.ToUpperInvariant(),
            _ => throw new TemplateException($"The test '{name}' is not supported."),
        };
    }
}
