import Foundation
import Testing

@testable import SlipwayCore

@Suite struct ConfigTests {
    let dir = TempDirectory()

    init() {
        dir.write("secrets/webhook", "s3cret\n")
        dir.write("secrets/registry", "hunter2")
        dir.write("secrets/github-pat", "ghp_x")
        dir.write("secrets/npm", "npm_x")
    }

    /// DESIGN.md's example config, pointing at real secret files.
    var example: String {
        """
        listen: "127.0.0.1:8080"
        data_dir: "/var/lib/slipway"
        admin_socket: "/run/slipway/slipway.sock"
        run_id_prefix: "sw"
        webhook:
          secret_files: ["secrets/webhook"]
          max_body_bytes: 26214400
          allow_sha1: false
        builds:
          max_concurrent: 2
          default_timeout: "1h"
          docker: "docker"
          network: "default"
          buildkit: true
        registries:
          - server: "registry.example.com"
            username: "ci-bot"
            password_file: "secrets/registry"
        tasks:
          - name: helloworld
            context: "https://github.com/octo-org/aci-helloworld.git#main:app"
            dockerfile: "Dockerfile"
            tags: ["registry.example.com/helloworld:{{.Run.ID}}", "registry.example.com/helloworld:latest"]
            git_token_file: "secrets/github-pat"
            build_args: { VERSION: "{{.Commit.Short}}" }
            secret_build_args: { NPM_TOKEN: "secrets/npm" }
            paths: { include: ["app/**"], exclude: ["**/*.md"] }
            push: true
            no_cache: false
            timeout: "30m"
            enabled: true
        """
    }

    @Test func designExampleLoads() throws {
        let file = dir.write("slipway.yaml", example)
        let config = try ConfigLoader.load(path: file)
        #expect(config.listen == .init(host: "127.0.0.1", port: 8080))
        #expect(config.webhook.secretFiles == ["\(dir.path)/secrets/webhook"])
        #expect(config.builds.defaultTimeout == .seconds(3600))
        #expect(config.registries.first?.passwordFile == "\(dir.path)/secrets/registry")
        let task = try #require(config.tasks.first)
        #expect(task.name == "helloworld")
        #expect(task.context == GitContext(url: "https://github.com/octo-org/aci-helloworld.git", branch: "main", folder: "app"))
        #expect(task.timeout == .seconds(1800))
        #expect(task.buildArgs == [.init(key: "VERSION", value: "{{.Commit.Short}}")])
        #expect(task.secretBuildArgs == [.init(key: "NPM_TOKEN", value: "\(dir.path)/secrets/npm")])
        #expect(task.paths == .init(include: ["app/**"], exclude: ["**/*.md"]))
        #expect(task.line == 20)
    }

    @Test func dropInTaskFilesAreLoaded() throws {
        let file = dir.write("slipway.yaml", "webhook:\n  secret_files: [secrets/webhook]\n")
        dir.write("tasks.d/web.yaml", "name: web\ncontext: https://git.example/app.git#main\ntags: [r/web:latest]\n")
        let config = try ConfigLoader.load(path: file)
        #expect(config.tasks.map(\.name) == ["web"])
        #expect(config.tasks[0].definedIn == "\(dir.path)/tasks.d/web.yaml")
    }

    /// Each malformed file and the exact message an operator sees.
    @Test(arguments: [
        ("listn: \"127.0.0.1:8080\"\n", "bad.yaml:1: listn: unknown key 'listn' (did you mean 'listen'?)"),
        ("listen: \"8080\"\n", "bad.yaml:1: listen: expected host:port (like 127.0.0.1:8080 or [::1]:8080), got '8080'"),
        (
            "builds:\n  default_timeout: \"1 hour\"\n",
            "bad.yaml:2: builds.default_timeout: invalid duration '1 hour': use a number with a unit, like 90s, 30m, 1h, 1h30m or 90d"
        ),
        ("webhook:\n  max_body_bytes: big\n", "bad.yaml:2: webhook.max_body_bytes: expected a whole number, got 'big'"),
        ("webhook:\n  read_timeout: \"1h\"\n", "bad.yaml:2: webhook.read_timeout: must be between 100ms and 10m, got '1h'"),
        ("webhook:\n  max_connections: 2\n", "bad.yaml:2: webhook.max_connections: must be between 16 and 1000000, got 2"),
        ("webhook:\n  allow_sha1: maybe\n", "bad.yaml:2: webhook.allow_sha1: expected true or false, got 'maybe'"),
        (
            "webhook:\n  secret_files: [missing]\n",
            "bad.yaml:2: webhook.secret_files[0]: cannot read secret file missing: No such file or directory"
        ),
        ("webhook:\n  secret_files: \"secrets/webhook\"\n", "bad.yaml:2: webhook.secret_files: expected a list, got 'secrets/webhook'"),
        (
            "tasks:\n  - name: web\n    context: \"https://github.com/o/r.git\"\n    tags: [r/web]\n",
            "bad.yaml:3: tasks[0].context: context 'https://github.com/o/r.git' has no branch: write it as url#branch or url#branch:folder"
        ),
        (
            "tasks:\n  - name: web\n    context: \"https://github.com/o/r.git#main\"\n",
            "bad.yaml:2: tasks[0]: missing required key 'tags'"
        ),
        (
            "tasks:\n  - name: web\n    context: \"https://github.com/o/r.git#main\"\n    tags: [r/web]\n  - name: web\n    context: \"https://github.com/o/s.git#main\"\n    tags: [r/s]\n",
            "bad.yaml:5: tasks[1].name: duplicate task name 'web' (first defined at bad.yaml:2)"
        ),
        (
            "tasks:\n  - name: web\n    context: \"https://github.com/o/r.git#main\"\n    tags: [\"r/web:{{.Run.Number}}\"]\n",
            "bad.yaml:4: tasks[0].tags[0]: unknown template variable '{{.Run.Number}}' in 'r/web:{{.Run.Number}}' (known: {{.Run.ID}}, {{.Commit}}, {{.Commit.Short}}, {{.Branch}}, {{.Tag}}, {{.Task}}, {{.Date}}, {{.Semver}}, {{.Semver.Major}}, {{.Semver.Minor}}, {{.PR}})"
        ),
        (
            "tasks:\n  - name: web\n    context: \"https://github.com/o/r.git#main:../etc\"\n    tags: [r/web]\n",
            "bad.yaml:3: tasks[0].context: folder '../etc' must not contain '..'"
        ),
        (
            "tasks:\n  - name: web\n    context: \"https://bot:hunter2@github.com/o/r.git#main\"\n    tags: [r/web]\n",
            "bad.yaml:3: tasks[0].context: repository URL must not carry credentials (user or token before '@'); put the token in git_token_file"
        ),
        (
            "tasks:\n  - name: Web App\n    context: \"https://github.com/o/r.git#main\"\n    tags: [r/web]\n",
            "bad.yaml:2: tasks[0].name: task name 'Web App' must be 1 to 63 of a-z, 0-9, '-', '_' and start with a letter or digit"
        ),
        (
            "tasks:\n  - name: web\n    context: \"https://github.com/o/r.git#-x\"\n    tags: [r/web]\n    timout: 30m\n",
            "bad.yaml:3: tasks[0].context: branch '-x' must not start with '-'\nbad.yaml:5: tasks[0].timout: unknown key 'timout' (did you mean 'timeout'?)"
        ),
        ("registries:\n  - server: r.example\n    username: bot\n", "bad.yaml:2: registries[0]: missing required key 'password_file'"),
        ("listen: \"127.0.0.1:8080\"\nlisten: \"127.0.0.1:9090\"\n", "bad.yaml:1: duplicate key 'listen'"),
        ("webhook:\n  secret_files: [a\n", "bad.yaml:3: invalid YAML: did not find expected ',' or ']'"),
        ("- just\n- a list\n", "bad.yaml:1: expected a mapping (key: value), got a list"),
    ])
    func malformedConfig(text: String, expected: String) {
        do {
            _ = try ConfigLoader.parse(text, file: "bad.yaml")
            Issue.record("accepted:\n\(text)")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test func dropInFileErrorsNameTheirFile() {
        let file = dir.write("slipway.yaml", "tasks: []\n")
        dir.write("tasks.d/web.yaml", "name: web\ncontext: https://git.example/app.git#main\ntags: [r/web]\npush: sometimes\n")
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(path: file) }
        do {
            _ = try ConfigLoader.load(path: file)
        } catch {
            #expect(error.description == "\(dir.path)/tasks.d/web.yaml:4: push: expected true or false, got 'sometimes'")
        }
    }

    @Test(arguments: [("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("90s", 90), ("2h0m5s", 7205), ("90d", 7_776_000)])
    func durations(text: String, seconds: Int) throws {
        #expect(try DurationParser.parse(text) == .seconds(seconds))
    }

    @Test(arguments: ["", "10", "1 h", "-5m", "0s", "1w", "m"])
    func badDurations(text: String) {
        #expect(throws: DurationParser.Invalid.self) { try DurationParser.parse(text) }
    }

    @Test func repositoryKeysMatchAcrossURLForms() {
        let key = "github.com/octo-org/aci-helloworld"
        for url in [
            "https://github.com/octo-org/aci-helloworld.git", "https://GitHub.com/octo-org/aci-helloworld",
            "git@github.com:octo-org/aci-helloworld.git", "ssh://git@github.com/octo-org/aci-helloworld.git",
            "https://bot@github.com/octo-org/aci-helloworld/", "git://github.com/octo-org/aci-helloworld.git",
        ] {
            #expect(GitContext.normalize(url) == key, "\(url)")
        }
        #expect(GitContext.normalize("http://127.0.0.1:8123/git/app.git") == "127.0.0.1:8123/git/app")
    }

    /// The byte-level fast path and the character steps agree on every shape of URL.
    @Test func repositoryKeyFastPathAgreesWithTheCharacterSteps() {
        let urls = [
            "", "://", "@", ":", "/", "a", "host", "HOST:", "host:/", "host:12", "host:12/", "host:12x/p", "host:x/p",
            "git@GitHub.com:Octo/App.git/", "ssh://git@github.com:22/octo/app.git", "https://u:p@h.example/o/r.git//",
            "https://h.example/o/r.git.git", "http://a@b/c@d/e", "file:///srv/git/app.git", "h.example//o//r//",
            "HTTPS://EXAMPLE.COM/Octo/Repo", ".git", "/.git/", "x://y://z", "git@host:port/path",
        ]
        for url in urls {
            #expect(GitContext.normalize(url) == GitContext.normalizeCharacters(url), "\(url)")
        }
        // Outside printable ASCII the character steps run.
        #expect(GitContext.normalize("https://GitHub.com/octo/ä.git") == "github.com/octo/ä")
    }

    @Test func templatesRender() throws {
        let t = try Template("reg/app:{{.Run.ID}}-{{ .Commit.Short }}")
        #expect(t.render([".Run.ID": "sw7", ".Commit.Short": "0d1a26e"]) == "reg/app:sw7-0d1a26e")
        #expect(throws: Template.Invalid.self) { try Template("reg/app:{{.Run.ID") }
    }
}
