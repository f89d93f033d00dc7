"""Kaitiaki's own detection rules, written for RE2 (no backtracking).

Each rule names a category (the CRS folder it answers to), a paranoia level
(1 is the default and must not break valid FHIR traffic or clinical prose), an
anomaly score (critical 5, error 4, warning 3, notice 2, as in CRS) and the
targets it reads. Where a pattern is derived from an OWASP CRS rule (Apache
License 2.0) the comment names that rule; the patterns themselves are ours,
shaped for FHIR: SQL words in prose never score alone, they need the shape of
an injection (a closing quote, a tautology, a statement after a terminator).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL_TARGETS", "PROTOCOL_RULE_IDS", "RULES", "Rule", "rule_ids"]

#: Where a value came from; exclusions and rules name these.
ALL_TARGETS = frozenset({"path", "query", "header", "body", "narrative"})
_NOT_PROSE = frozenset({"path", "query", "header"})
_NOT_NARRATIVE = ALL_TARGETS - {"narrative"}
_NARRATIVE = frozenset({"narrative"})
_UA = frozenset({"user-agent"})
_FILENAME = frozenset({"x-filename", "x_filename", "x-file-name"})

_Q = "['\"\\x60]"  # a closing quote of any SQL dialect


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    pattern: str
    paranoia: int = 1
    score: int = 5
    targets: frozenset[str] = ALL_TARGETS
    base64: bool = False
    headers: frozenset[str] = frozenset()
    #: Also matched on the shell-unquoted form of values (CRS t:cmdLine).
    cmdline: bool = False


_SQL_STATEMENT = (
    r"(?:drop|alter|truncate)\s+(?:table|database|schema|user|view|index|procedure)"
    r"|delete\s+from|insert\s+into|update\s+\S+\s+set|exec(?:ute)?\s+\w"
    r"|shutdown\b|declare\s+@|select\s+\S.{0,80}?\bfrom\b|create\s+(?:table|user)"
)
_COMMANDS = (
    r"(?:cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|ksh|csh|dash"
    r"|python[23]?|perl|ruby|php|nslookup|dig|ifconfig|ipconfig|telnet|ssh|chmod"
    r"|chown|rm|mv|cp|echo|printf|tftp|busybox|passwd|base64|xxd|awk|sed|tar"
    r"|nohup|sudo|crontab|powershell|cmd|certutil|wmic|systeminfo|tasklist|net"
    r"|env|printenv|ps|netstat|ss|head|tail|find|sort|more|less|type|dir|ping"
    r"|sleep|kill|touch|mkdir|xterm|socat|nmap|whois|hostname|grep|top|lastlog"
    r"|lastlogin|rmt|irb|who|bsdtar|gcc|alias|time|exec|eval|xargs|strace|pkill)"
)
# A command word counts only with a shell-shaped argument or at the very end:
# "; ls -la" and "; id" score, "; type 2 diabetes" and "| more tests" do not.
_SHELL_ARG = r"(?:\s*$|\s+[-/$~.'\"<>|&;*]|\s*[<>|;&]|\$\{?IFS|\s+\d+\s*$)"
_SCANNERS = (
    r"sqlmap|nikto|nmap|masscan|zgrab|dirbuster|gobuster|feroxbuster|ffuf|wfuzz"
    r"|nuclei|wpscan|acunetix|netsparker|nessus|openvas|w3af|arachni|havij|zmeu"
    r"|morfeus|paros|webinspect|appscan|skipfish|whatweb|jaeles|commix|fimap"
    r"|hydra|zaproxy|nsauditor|jorgee|grabber|bsqlbf|sqlninja|pangolin|absinthe"
    r"|webshag|wapiti|xsser|dirb|brutus|blackwidow|cgichk|nasl|httrack|joomscan"
    r"|webvulnscan|metis|mysqloit|netlab360|sysscan|vega/|zgrab|leakix|censys"
)
_INTERNAL_HOST = (
    r"(?:localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|0\.0\.0\.0|0x7f\w*|0177\.\S*"
    r"|\[[0:]*:1?\]|\[::ffff:[^\]]*\]|10\.\d{1,3}\.\d{1,3}\.\d{1,3}"
    r"|192\.168\.\d{1,3}\.\d{1,3}|172\.(?:1[6-9]|2\d|3[01])\.\d{1,3}\.\d{1,3}"
    r"|[a-z0-9.-]+\.(?:internal|local|localhost|intranet|corp|lan|home\.arpa))"
)
_DANGEROUS_ELEMENTS = (
    r"script|iframe|frame|frameset|object|embed|applet|form|input|button|textarea"
    r"|select|option|base|link|meta|style|svg|math|audio|video|source|template"
    r"|noscript|isindex|marquee|xss|xml|import|portal|bgsound|layer|ilayer"
)

# fmt: off
RULES: tuple[Rule, ...] = (
    # --- SQL injection (CRS 942; shapes after 942100/942130/942190/942360) ---
    Rule("sqli-tautology-quoted", "sqli",
         _Q + r"\s*\)*\s*(?i:or|and|xor|\|\||&&)\s+\(*\s*" + _Q
         + r"?[\w\s]*" + _Q + r"?\s*(?:=|<>|!=|<=?|>=?|(?i:like|rlike|regexp|is)\b)"),
    Rule("sqli-tautology-numeric", "sqli",
         r"(?i)(?:^|[\s'\"\x60)(]|\d)(?:or|and|xor|\|\||&&)\s+\(*\s*[\d'\"]+\s*"
         r"(?:=|<>|!=|<=?|>=?|like\b)\s*[\d'\"(]"),
    Rule("sqli-quote-operator", "sqli",
         _Q + r"\s*\)*\s*(?i:or|and|xor|div|not|like|glob|regexp|rlike|similar|is"
         r"|notnull|isnull|between|sounds|unlikely)\b[^\n'\"]{0,40}?(?:(?:--|#|;)"
         r"\s*$|['\"]\d)"),
    Rule("sqli-union-select", "sqli",
         r"(?i)\bunion\b[\s(/*]+(?:all\b|distinct\b)?[\s(/*]*select\b"),
    Rule("sqli-stacked", "sqli",
         r"(?i)(?:" + _Q + r"|\d|\))\s*\)*\s*;\s*(?:" + _SQL_STATEMENT + ")"),
    Rule("sqli-statement-after-quote", "sqli",
         r"(?i)" + _Q + r"\s*\)*\s*(?:;|\b(?:and|or)\b)\s*\(*\s*(?:" + _SQL_STATEMENT
         + r"|select\b)"),
    Rule("sqli-comment-terminator", "sqli",
         _Q + r"\s*\)*\s*(?:--|#|;\s*--|/\*!?)[\s-]*$"),
    Rule("sqli-inline-comment", "sqli",
         r"/\*!\d*\s*\w|\w/\*\*/\w|\b(?i:drop|select|union|insert|delete|update)/\*"),
    Rule("sqli-blind-timing", "sqli",
         r"(?i)\b(?:sleep|pg_sleep|benchmark|randomblob)\s*\(\s*[\d.]+\s*[,)]"
         r"|\bwaitfor\s+(?:delay|time)\s+'|dbms_(?:pipe\.receive_message|lock\.sleep)"
         r"|\bpg_sleep\b|\bselect\s+(?:sleep|benchmark)\s*\("),
    Rule("sqli-schema-probe", "sqli",
         r"(?i)\b(?:information_schema|mysql\.(?:user|db)|sys\.(?:objects|tables|"
         r"columns|databases)|pg_catalog|pg_shadow|pg_user|sqlite_master|"
         r"sysobjects|syscolumns|msysobjects|all_tables|user_tables|"
         r"master\.\.sysdatabases|xp_cmdshell|xp_regread|xp_dirtree|sp_executesql|"
         r"sp_oacreate|sp_password)\b"),
    Rule("sqli-injection-functions", "sqli",
         r"(?i)\b(?:load_file|extractvalue|updatexml|group_concat|concat_ws|unhex|"
         r"make_set|name_const|utl_http\.request|utl_inaddr\.\w+|dbms_xmlgen|"
         r"xmltype|ctxsys\.\w+|sys_context|json_keys|gtid_subset|exp\s*\(\s*~)\s*\("
         r"|\binto\s+(?:out|dump)file\b|@@(?:version|datadir|hostname|basedir)\b"
         r"|\bexecute\s+immediate\b|\bcreate\s+(?:or\s+replace\s+)?function\b.{0,200}"
         r"\breturns\b"),
    Rule("sqli-quote-function", "sqli",
         r"(?i)" + _Q + r"\s*(?:\|\||\+|\bor\b|\band\b|\bdiv\b)\s*\(*\s*(?:char|chr|"
         r"ascii|substring|substr|mid|ord|hex|concat|version|database|user|"
         r"current_user|if|case|cast|convert|length|count|sleep)\s*\("),
    Rule("sqli-order-having", "sqli",
         r"(?i)(?:" + _Q + r"|\d|\))\s*\b(?:order\s+by\s+\d+|group\s+by\s+\S+\s+"
         r"having\b|having\s+\d+\s*=\s*\d+|procedure\s+analyse)"),
    Rule("sqli-select-subquery", "sqli",
         r"(?i)\(\s*select\b.{0,200}?\bfrom\b|\bin\s*\(\s*select\b|"
         r"\bselect\s+(?:\*|count\s*\(|top\s+\d|\w+(?:\s*,\s*\w+)+)\s+from\b|"
         r"\bselect\s+.{0,100}?\bfrom\s+\w+\s+where\b", targets=_NOT_PROSE),
    Rule("sqli-postgres-cast", "sqli",
         r"(?i)(?:\)|" + _Q + r")\s*::\s*(?:int|text|jsonb?|varchar|regclass)\b"),
    Rule("sqli-case-when", "sqli",
         r"(?i)\bcase\s+when\b.{0,200}?\bthen\b|\)\s*when\s+\d+\s+then\b",
         targets=_NOT_PROSE),
    Rule("sqli-select-from", "sqli",
         r"(?i)\bselect\b.{1,100}?\bfrom\b.{1,100}?\b(?:where|limit|order\s+by)\b",
         paranoia=2, score=4),
    Rule("sqli-keyword-operator", "sqli",
         r"(?i)\b(?:or|and)\s+\w+\s*(?:=|<>|!=)\s*\w+|" + _Q + r"\s*(?:--|#)",
         paranoia=2, score=4),
    # --- XSS (CRS 941; after 941110/941120/941170/941180) ---
    Rule("xss-script", "xss", r"(?i)<\s*/?\s*script\b", targets=_NOT_NARRATIVE,
         base64=True),
    Rule("xss-event-handler", "xss",
         r"(?i)<[^>]*[\s\"'/;]on[a-z]{3,}\s*=", targets=_NOT_NARRATIVE),
    Rule("xss-event-name", "xss",
         r"(?i)(?:^|[\s\"'\x60;/])on[a-z]{3,50}=", targets=_NOT_PROSE),
    Rule("xss-script-uri", "xss",
         r"(?i)(?:java|vb|live)\s*script\s*:|data\s*:\s*text/html|-moz-binding|"
         r"j\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t\s*:|v\s*b\s*s\s*c\s*r\s*i\s*p\s*t\s*:",
         targets=_NOT_NARRATIVE, base64=True),
    Rule("xss-element", "xss",
         r"(?i)<\s*/?\s*(?:" + _DANGEROUS_ELEMENTS + r"|img|body|image|details|"
         r"a\s[^>]*href|div\s[^>]*style|video|object)\b|<\s*[a-z]+:[a-z]+|"
         r"<\??\s*import\b|<!--\s*#|<!\[cdata\[|<[a-z]+[^>]*\bxmlns(?::\w+)?\s*=",
         targets=_NOT_NARRATIVE),
    Rule("xss-dom-sink", "xss",
         r"(?i)\b(?:document\.(?:cookie|domain|write|location)|window\.location|"
         r"\.innerhtml\b|(?:alert|prompt|confirm|eval)\s*[(\x60]|fromcharcode\s*\(|"
         r"settimeout\s*\(|setinterval\s*\(|top\s*\[|self\s*\[|window\s*\[|"
         r"new\s+function\s*\(|reflect\s*\.\s*apply)",
         targets=_NOT_NARRATIVE),
    Rule("xss-dom-property", "xss",
         r"(?i)\b(?:document|window)\b\s*\)?\s*(?:\.|\[\s*[\"'\x60])\s*(?:cookie|"
         r"domain|write|location|document|alert)\b", targets=_NOT_NARRATIVE),
    Rule("xss-jsfuck", "xss",
         r"\(!\[\]\+\[\]\)|!\+\[\]|\+!!\[\]|\[\]\[\(|\[\s*\]\s*\.\s*\w+\s*\.\s*call"
         r"\s*\x60|\x60\s*\$\{\s*(?:alert|eval|prompt|confirm|navigation)",
         targets=_NOT_NARRATIVE),
    Rule("xss-event-attribute", "xss",
         r"(?i)[\s\"'\x60;/0-9=]on[a-z]{3,25}\s*=\s*[\w\"'\x60(]",
         paranoia=2, score=4, targets=_NOT_NARRATIVE),
    # FHIR narratives are XHTML: judged by the narrative rules of the FHIR
    # specification (no active content, no event attributes), not by tag use.
    Rule("narrative-active-element", "xss",
         r"(?i)<\s*/?\s*(?:" + _DANGEROUS_ELEMENTS + r")\b", targets=_NARRATIVE),
    Rule("narrative-event-attribute", "xss",
         r"(?i)<[^>]*[\s\"'/]on[a-z]+\s*=", targets=_NARRATIVE),
    Rule("narrative-script-uri", "xss",
         r"(?i)(?:java|vb|live)\s*script\s*:|data\s*:\s*text/html|"
         r"expression\s*\(|-moz-binding|url\s*\(\s*['\"]?\s*javascript",
         targets=_NARRATIVE),
    # --- OS command injection (CRS 932; after 932100/932110/932160/932170) ---
    Rule("rce-command-chain", "rce",
         r"(?i)(?:[;|&\n\x60]|\$\(|\|\||&&)\s*(?:/(?:usr/)?(?:local/)?s?bin/)?"
         + _COMMANDS + _SHELL_ARG, cmdline=True),
    # A network tool chained after a separator, aimed at a host name (a
    # reverse shell or an exfiltration, e.g. "| nc attacker.example 4444").
    Rule("rce-network-command", "rce",
         r"(?i)(?:[;|&\n\x60]|\$\(|\|\||&&)\s*(?:/(?:usr/)?s?bin/)?"
         r"(?:nc|ncat|netcat|telnet|socat|curl|wget|ssh|scp|ftp|tftp|ping|nslookup"
         r"|dig)\s+(?:-\S+\s+)*[\w@:-]+(?:\.[\w-]+)+", cmdline=True),
    # A value that is a command. Words that are also names or FHIR tokens
    # (a patient called Ruby, Perl or Ping; _elements=id) count at level 1
    # only with an argument only a shell would take: an option, a path, a
    # variable, a quote, or a dotted host; the rest count alone too.
    Rule("rce-leading-command", "rce",
         r"(?i)^\s*(?:time\s+|nohup\s+|sudo\s+|env\s+)?(?:"
         r"(?:whoami|uname|ifconfig|ipconfig|nslookup|busybox|powershell|chmod|"
         r"chown|ncat|netcat|zsh)(?:\s+\S|\s*$)"
         r"|(?:ls|wget|curl|nc|bash|sh|python[23]?|perl|ruby|php|who|id)"
         r"\s+[-/.~$'\"\\|<>&;]"
         r"|(?:ping|nc|curl|wget|ssh|telnet)\s+(?:-\S+\s+)*[\w-]+(?:\.[\w-]+)+)"
         r"|^\s*(?:time|nohup|sudo|env)\s+(?:ls|wget|curl|nc|bash|sh|python[23]?|perl|"
         r"ruby|php|who|id|ping)(?:\s+\S|\s*$)",
         targets=_NOT_PROSE, cmdline=True),
    # CRS's reading at level 2: any of those words as the whole value, or
    # with any argument.
    Rule("rce-bare-command", "rce",
         r"(?i)^\s*(?:time\s+|nohup\s+|sudo\s+|env\s+)?(?:ls|wget|curl|nc|ncat|bash|"
         r"sh|zsh|whoami|uname|ifconfig|ipconfig|nslookup|chmod|chown|busybox|"
         r"python[23]?|perl|ruby|php|powershell|who|id|ping)(?:\s+\S|\s*$)",
         paranoia=2, score=4, targets=_NOT_PROSE, cmdline=True),
    Rule("rce-substitution", "rce",
         r"(?i)\$\(\s*" + _COMMANDS + r"\b|\x60\s*" + _COMMANDS + r"\b[^\x60]*\x60"
         r"|\$\{IFS\}|\$IFS\b|\$\{(?:PATH|HOME|SHELL|PWD)[:}]|\$\(\(|\$\(\s*\)|"
         r"[<>]\(\s*\)|\{\s*,\s*\w+\s*,|\$\{[a-z_][\w.]*\}", targets=_NOT_PROSE,
         cmdline=True),
    Rule("rce-shellshock", "rce", r"\(\s*\)\s*\{[^}]*;\s*\}|^\s*\(\s*\)\s*\{"),
    Rule("rce-unix-path", "rce",
         r"(?i)/(?:usr/)?(?:local/)?s?bin/(?:ba|z|k|c|da|tc)?sh\b|/bin/(?:cat|ls|nc|"
         r"busybox|python\d?|perl|bash|echo|id|uname|wget|curl)\b|/dev/(?:tcp|udp)/|"
         r"\b(?:ba|z|k|da)?sh\s+-c\b", cmdline=True),
    Rule("rce-windows", "rce",
         r"(?i)\bcmd(?:\.exe)?\s*/[ck]\b|\bpowershell(?:\.exe)?\b|%comspec%|"
         r"\b(?:certutil|bitsadmin|mshta|rundll32|regsvr32|wscript|cscript)"
         r"(?:\.exe)?\b|\bnet\s+(?:user|localgroup)\b|\bfor(?:\s+/[a-z](?:\s+\S+)?)?"
         r"\s+%%?\w+\s+in\s*\(|\bif\s+(?:not\s+)?(?:exist|defined|errorlevel)\s"),
    Rule("rce-fetch", "rce",
         r"(?i)\b(?:wget|curl|fetch|lwp-download)\s+(?:-\S+\s+)*['\"]?(?:https?|ftp)"
         r"://", cmdline=True),
    Rule("rce-interpreter", "rce",
         r"(?i)\b(?:python[23]?|perl|ruby|php|node)\s+-[ecr]\s"),
    Rule("rce-upload-name", "rce",
         r"(?i)\.(?:php\d?|phtml|phar|asp|aspx|jsp|cgi|pl|sh|exe|bat|config|ya?ml|"
         r"ini|env|htaccess)\s*$|\s\.\s*php\b", targets=frozenset({"header"}),
         headers=_FILENAME),
    # --- path traversal and local file inclusion (CRS 930) ---
    Rule("lfi-traversal", "lfi", r"(?:^|[\\/])\.{2,}[\\/]|[\\/]\.{2,}(?:$|[\\/])",
         targets=_NOT_PROSE),
    Rule("lfi-traversal-prose", "lfi", r"\.\.[\\/]\.\.[\\/]|[\\/]\.\.[\\/]"),
    Rule("lfi-os-file", "lfi",
         r"(?i)(?:/etc/(?:passwd|shadow|group|hosts|issue|motd|crontab|sudoers|"
         r"hostname|resolv\.conf|fstab|mtab|profile|environment|master\.passwd)|"
         r"/proc/(?:self|\d+)/|/var/log/|/var/run/secrets|boot\.ini|win\.ini|"
         r"system\.ini|\\system32\\|\\windows\\|\b[a-z]:\\(?:windows|winnt|boot|"
         r"inetpub|users)|\.htaccess|\.htpasswd|web\.config|/\.git/|/\.svn/|"
         r"/\.env\b|\bid_rsa\b|authorized_keys|\.bash_history|wp-config\.php)",
         base64=True, cmdline=True),
    # --- remote file inclusion and SSRF (CRS 931, CRS 934 SSRF rules) ---
    Rule("rfi-scheme", "rfi",
         r"(?i)\b(?:file|gopher|dict|php|phar|expect|jar|ldaps?|tftp|sftp|netdoc|"
         r"zip|glob|ogg|ssh2|rar|compress\.zlib|compress\.bzip2)://"),
    Rule("rfi-ip-url", "rfi",
         r"(?i)(?:https?|ftps?)://(?:[^/@\s]*@)?\[?(?:\d{1,3}\.){3}\d{1,3}"),
    Rule("rfi-trailing-question", "rfi", r"(?i)^(?:file|ftps?|https?)://.*\?+$"),
    Rule("ssrf-metadata", "rfi",
         r"(?i)169\.254\.169\.254|\bmetadata\.google\.internal\b|"
         r"\bmetadata\.azure\.com\b|100\.100\.100\.200|fd00:ec2::254|0xa9fea9fe|"
         r"\b2852039166\b|instance-data\b"),
    Rule("ssrf-internal-host", "rfi",
         r"(?i)\b(?:https?|ftp|wss?)://(?:[^/@\s]*@)?" + _INTERNAL_HOST
         + r"(?:[:/?#]|$)"),
    Rule("ssrf-userinfo-url", "rfi", r"(?i)\b(?:https?|ftp)://[^/\s@?#]+@",
         paranoia=2, score=4),
    # --- generic application attacks (CRS 934) ---
    Rule("generic-prototype-pollution", "generic",
         r"__proto__|\bconstructor\s*(?:\.|\[\s*['\"]?)\s*prototype\b"),
    Rule("generic-node-injection", "generic",
         r"(?i)\brequire\s*\(\s*['\"](?:child_process|fs|net|vm|os)\b|"
         r"\bprocess\.(?:mainmodule|binding|kill|exit)\b|\bchild_process\b|"
         r"\.(?:exec|spawn)(?:sync)?\s*\(|\bthis\.constructor\.constructor\b"),
    Rule("generic-template-injection", "generic",
         r"\{\{[^}]{0,100}(?:[*+]|\bconstructor\b|\bclass\b|__|\bself\b|\bconfig\b|"
         r"\brequest\b|\bcycler\b|\blipsum\b)[^}]{0,100}\}\}|\$\{\s*\d+\s*[*+]\s*\d"
         r"|<%=?[^%]{0,200}%>|#\{[^}]{0,100}\}|\{%[^%]{0,100}%\}"),
    Rule("generic-python-injection", "generic",
         r"(?i)\b__import__\s*\(|\bos\.(?:system|popen)\s*\(|\bsubprocess\.\w+|"
         r"\b(?:eval|exec|compile)\s*\(\s*['\"\w]|__(?:globals|builtins|class|"
         r"subclasses|mro)__"),
    Rule("generic-perl-ruby", "generic",
         r"(?i)@\{\[\s*system|\bsystem\s*\(\s*['\"]|\bIO\.popen\b|\bKernel\.exec\b|"
         r"\bopen\s*\(\s*['\"]\|"),
    # --- Java (CRS 944; Log4Shell after 944150, classes after 944130) ---
    Rule("java-jndi", "java",
         r"(?i)\$\{[^}]{0,200}(?:jndi|\$\{|lower:|upper:|env:|sys:|::-)",
         base64=True),
    Rule("java-classes", "java",
         r"(?i)\bjava\.(?:lang|io|net|nio|util\.zip|beans|rmi)\.\w+|\bjavax\.\w+\.|"
         r"\bruntime\.getruntime\s*\(|new\s+processbuilder\b|\.forname\s*\(|"
         r"scriptenginemanager|org\.apache\.(?:commons|struts|xalan|tomcat)|"
         r"invokertransformer|chainedtransformer|constanttransformer|templatesimpl|"
         r"com\.sun\.org\.apache|com\.opensymphony\.xwork2|org\.omg\.corba|"
         r"objectinputstream|\.readobject\s*\(|\bclass\.(?:module\.)?classloader\b|"
         r"\bjava\b[^\n]{0,40}\b(?:runtime|processbuilder)\b|"
         r"\b(?:runtime|processbuilder)\b[^\n]{0,40}\b(?:clonetransformer|"
         r"forclosure|instantiatefactory|instantiatetransformer|"
         r"prototypeclonefactory|prototypeserializationfactory|whileclosure|"
         r"getproperty|filewriter|xmldecoder)|\bclonetransformer\b|"
         r"\binstantiatetransformer\b|\bprototypeserializationfactory\b",
         base64=True),
    Rule("java-serialized", "java", r"\xac\xed\x00\x05|(?i:aced0005)|rO0AB"),
    Rule("java-expression", "java",
         r"(?i)%\{[^}]{0,200}(?:#_memberaccess|@java|#context|ognl|#cmd)|"
         r"#_memberaccess|@ognl\.|\$\{[^}]{0,200}(?:getclass|forname|getruntime|"
         r"\.exec)|\bT\s*\(\s*java\."),
    # --- protocol attacks in values (CRS 921) ---
    Rule("protocol-crlf", "protocol", r"[\r\n]", targets=_NOT_PROSE),
    Rule("protocol-header-injection", "protocol",
         r"(?i)[\r\n]\s*(?:content-(?:type|length)|set-cookie|location|"
         r"transfer-encoding|host)\s*:|\bhttp/\d\.\d\s*[\r\n]"),
    Rule("protocol-request-line", "protocol",
         r"(?i)\b(?:get|post|head|put|delete|options|trace|connect|patch|propfind)"
         r"\s+\S+\s+http/\d(?:\.\d)?\b"),
    Rule("protocol-ldap", "protocol",
         r"\)\s*\(\s*[|&!]\s*\(?\s*\w+\s*[=~<>]|\*\)\s*\(\s*[|&]|\)\s*\(\s*\w+=\*\)|"
         r"\)\s*!?\s*\(\s*(?:[&|!]\s*\)|[\w-]+\s*[<>~]?=)", targets=_NOT_PROSE),
    # --- scanners (CRS 913) ---
    Rule("scanner-user-agent", "scanner", r"(?i)(?:" + _SCANNERS + r")",
         targets=frozenset({"header"}), headers=_UA),
)
# fmt: on

#: The request-shape rules of :mod:`kaitiaki.waf.protocol` (code, not patterns).
PROTOCOL_RULE_IDS = (
    "protocol-body-without-meaning",
    "protocol-restricted-header",
    "protocol-repeated-header",
    "protocol-empty-host",
    "protocol-missing-user-agent",
    "protocol-missing-accept",
)


def rule_ids() -> frozenset[str]:
    """Every rule id an exclusion may name."""
    return frozenset({rule.id for rule in RULES} | set(PROTOCOL_RULE_IDS))
