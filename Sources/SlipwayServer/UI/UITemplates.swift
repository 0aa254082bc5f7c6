import Mustache

/// The web page's templates (Mustache: `{{…}}` is HTML-escaped, `{{{…}}}` is not and is used
/// only for markup built here). Plain HTML and CSS; script only for the live log.
enum UITemplates {
    static let layout = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Slipway</title>
        <style>
        body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f8fa}
        header{background:#24292f;color:#fff;padding:.6em 1.2em}header a{color:#fff;margin-right:1.2em;text-decoration:none}
        main{padding:1em 1.5em;max-width:72em}table{border-collapse:collapse;width:100%;background:#fff}
        th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #d0d7de;vertical-align:top}
        .Succeeded,.ok{color:#1a7f37;font-weight:600}.Failed,.Error,.Timeout,.bad{color:#cf222e;font-weight:600}
        .Running,.Queued{color:#9a6700;font-weight:600}.Canceled{color:#57606a;font-weight:600}
        pre{background:#0d1117;color:#e6edf3;padding:1em;overflow-x:auto;font-size:13px;line-height:1.35}
        form{display:inline}button{cursor:pointer}.muted{color:#57606a}dl{display:grid;grid-template-columns:10em auto;gap:.2em 1em}
        dt{color:#57606a}dd{margin:0}
        </style></head>
        <body><header><strong>Slipway</strong> &nbsp; <a href="/">Tasks</a><a href="/runs">Runs</a><a href="/events">Events</a><a href="/engines">Engines</a>
        <span class="muted">{{user}}</span></header>
        <main>{{{content}}}</main></body></html>
        """

    static let tasks = """
        <h1>Tasks</h1>
        <table><tr><th>Task</th><th>Context</th><th>Last run</th><th>Status</th><th></th></tr>
        {{#tasks}}<tr><td>{{name}}</td><td class="muted">{{context}}</td>
        <td>{{#runId}}<a href="/runs/{{runId}}">{{runId}}</a> <span class="muted">{{updated}}</span>{{/runId}}</td>
        <td class="{{status}}">{{status}}</td>
        <td><form method="post" action="/tasks/{{name}}/run"><input type="hidden" name="csrf" value="{{csrf}}"><button>Run</button></form></td></tr>
        {{/tasks}}</table>
        """

    static let runs = """
        <h1>Runs{{#task}} of {{task}}{{/task}}{{#status}} · {{status}}{{/status}}</h1>
        <table><tr><th>Run</th><th>Task</th><th>Status</th><th>Trigger</th><th>Commit</th><th>Branch</th><th>Created</th></tr>
        {{#runs}}<tr><td><a href="/runs/{{id}}">{{id}}</a></td><td><a href="/runs?task={{task}}">{{task}}</a></td><td class="{{status}}">{{status}}</td>
        <td>{{trigger}}</td><td><code>{{short}}</code></td><td>{{branch}}</td><td class="muted">{{created}}</td></tr>{{/runs}}
        </table>
        {{#more}}<p><a href="/runs?{{more}}">Older runs</a></p>{{/more}}
        """

    static let run = """
        <h1>Run {{id}} <span id="status" class="{{status}}">{{status}}</span></h1>
        <dl><dt>Task</dt><dd>{{task}}</dd><dt>Trigger</dt><dd>{{trigger}}{{#requestedBy}} by {{requestedBy}}{{/requestedBy}}</dd>
        <dt>Commit</dt><dd>{{#commitURL}}<a href="{{commitURL}}"><code>{{commit}}</code></a>{{/commitURL}}{{^commitURL}}<code>{{commit}}</code>{{/commitURL}} ({{branch}}{{tag}})</dd>
        <dt>Engine</dt><dd>{{engine}}</dd><dt>Step</dt><dd>{{step}}</dd>{{#reason}}<dt>Reason</dt><dd>{{reason}}</dd>{{/reason}}
        <dt>Created</dt><dd>{{created}}</dd>{{#started}}<dt>Started</dt><dd>{{started}}</dd>{{/started}}{{#finished}}<dt>Finished</dt><dd>{{finished}}</dd>{{/finished}}
        {{#durations}}<dt>{{step}}</dt><dd>{{seconds}} s</dd>{{/durations}}
        {{#images}}<dt>Image</dt><dd><code>{{tag}}</code> {{#digest}}<code class="muted">{{digest}}</code>{{/digest}}{{^digest}}<span class="muted">(not pushed)</span>{{/digest}}</dd>{{/images}}
        </dl>
        <p>{{#active}}<form method="post" action="/runs/{{id}}/cancel"><input type="hidden" name="csrf" value="{{csrf}}"><button id="cancel">Cancel</button></form>{{/active}}
        {{#retryable}}<form method="post" action="/runs/{{id}}/retry-push"><input type="hidden" name="csrf" value="{{csrf}}"><button>Retry push</button></form>{{/retryable}}
        <a href="/runs/{{id}}/log">Full log</a>{{#truncated}} <span class="muted">(the page shows the last {{shown}} lines)</span>{{/truncated}}</p>
        <pre id="log">{{log}}</pre>
        {{#active}}<script>
        (function(){var log=document.getElementById('log'),st=document.getElementById('status');
        var es=new EventSource('/runs/{{id}}/stream?from={{offset}}');
        es.onmessage=function(e){log.appendChild(document.createTextNode(e.data+'\\n'));};
        es.addEventListener('status',function(e){st.textContent=e.data;st.className=e.data;es.close();var c=document.getElementById('cancel');if(c)c.remove();});})();
        </script>{{/active}}
        """

    static let events = """
        <h1>Events</h1>
        <table><tr><th>Seq</th><th>Received</th><th>Type</th><th>Repository</th><th>Ref</th><th>Delivery</th></tr>
        {{#events}}<tr><td><a href="/events/{{seq}}">{{seq}}</a></td><td class="muted">{{received}}</td><td>{{type}}</td><td>{{repository}}</td><td>{{ref}}</td><td class="muted">{{delivery}}</td></tr>{{/events}}
        </table>
        """

    static let event = """
        <h1>Event {{seq}} <span class="muted">{{type}}</span></h1>
        <dl><dt>Received</dt><dd>{{received}}</dd><dt>Delivery</dt><dd>{{delivery}} (hook {{hook}})</dd><dt>Signature</dt><dd>{{signature}}</dd>
        {{#repository}}<dt>Repository</dt><dd>{{repository}}</dd>{{/repository}}{{#ref}}<dt>Ref</dt><dd>{{ref}}</dd>{{/ref}}
        {{#after}}<dt>Commit</dt><dd><code>{{after}}</code></dd>{{/after}}
        {{#message}}<dt>Message</dt><dd>{{message}}</dd>{{/message}}{{#author}}<dt>Author</dt><dd>{{author}}</dd>{{/author}}</dl>
        <h2>Match trace</h2>
        <table><tr><th>Task</th><th>Matched</th><th>Reason</th><th>Run</th></tr>
        {{#trace}}<tr><td>{{task}}</td><td>{{#matched}}yes{{/matched}}{{^matched}}no{{/matched}}</td><td>{{reason}}</td><td>{{#runId}}<a href="/runs/{{runId}}">{{runId}}</a>{{/runId}}</td></tr>{{/trace}}
        </table>
        <p><form method="post" action="/events/{{seq}}/replay"><input type="hidden" name="csrf" value="{{csrf}}"><button>Replay</button></form></p>
        """

    static let engines = """
        <h1>Engines</h1>
        <table><tr><th>Name</th><th>Host</th><th>State</th><th>Running</th><th>Max concurrent</th><th>Labels</th><th>Disk free</th><th>Last seen</th></tr>
        {{#engines}}<tr><td>{{name}}</td><td>{{host}}</td><td class="{{#up}}ok{{/up}}{{^up}}bad{{/up}}">{{state}}{{#error}}: {{error}}{{/error}}</td><td>{{running}}</td><td>{{max}}</td><td>{{labels}}</td><td>{{disk}}</td><td>{{seen}}</td></tr>{{/engines}}</table>
        """

    static let problem = """
        <h1>{{title}}</h1><p>{{message}}</p>
        """

    static func library() -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in [
            ("layout", layout), ("tasks", tasks), ("runs", runs), ("run", run), ("events", events), ("event", event), ("engines", engines),
            ("problem", problem),
        ] {
            // The templates are fixed text tested by every page test: a parse error is a programming error.
            try! library.register(text, named: name)
        }
        return library
    }
}
