// kgrec's local Neo4j server: an embedded Neo4j Community DBMS with Bolt, HTTP (Neo4j Browser at
// /browser/) and APOC, started by graph/neo4j_local/launcher.py. Not meant to be run by hand, but it can be:
//
//   javac -cp "<jars>/lib/*" -d <jars>/launcher KgrecNeo4j.java
//   KGREC_NEO4J_PASSWORD=... java -Xms256m -Xmx1g --add-opens ... \
//       -cp "<jars>/launcher:<jars>/lib/*:<jars>/plugins/*" KgrecNeo4j \
//       --home DIR --plugins <jars>/plugins --listen 127.0.0.1 --bolt-port 7687 --http-port 7474 --pagecache 512m
//
// (or run this file directly in JDK single-file source mode: `java -cp ... KgrecNeo4j.java --home ...`).
//
// The password of user neo4j is read from the environment variable KGREC_NEO4J_PASSWORD (never from argv,
// so it does not show in `ps`) and set on every start. Data lives in <home>/data and survives restarts;
// debug.log goes to <home>/logs, the user log to stdout. Extra settings (same keys as neo4j.conf) may be
// put in <home>/conf/neo4j.conf; the settings below always win over that file.
//
// Prints "KGREC_NEO4J_READY ..." once the `neo4j` database is available and the password is set.
// SIGTERM/SIGINT -> shutdown hook -> managementService.shutdown().

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.logging.log4j.Log4jLogProvider;

public final class KgrecNeo4j {

    static final String READY = "KGREC_NEO4J_READY";
    static final String PASSWORD_ENV = "KGREC_NEO4J_PASSWORD";

    private KgrecNeo4j() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = parseArgs(argv);
        Path home = Path.of(require(args, "home")).toAbsolutePath().normalize();
        Path plugins = Path.of(require(args, "plugins")).toAbsolutePath().normalize();
        String listen = args.getOrDefault("listen", "127.0.0.1");
        int boltPort = Integer.parseInt(args.getOrDefault("bolt-port", "7687"));
        int httpPort = Integer.parseInt(args.getOrDefault("http-port", "7474"));
        long pagecache = ByteUnit.parse(args.getOrDefault("pagecache", "512m"));
        long readyTimeoutMs = Long.parseLong(args.getOrDefault("ready-timeout-ms", "600000"));

        String password = System.getenv(PASSWORD_ENV);
        if (password == null || password.length() < 8) {
            System.err.println("KGREC_NEO4J_ERROR environment variable " + PASSWORD_ENV
                    + " must hold the password of user neo4j (at least 8 characters)");
            System.exit(2);
        }
        Files.createDirectories(home.resolve("logs"));

        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(home);
        Path extraConf = home.resolve("conf").resolve("neo4j.conf");
        if (Files.isRegularFile(extraConf)) {
            System.out.println("kgrec: loading extra settings from " + extraConf);
            builder.loadPropertiesFromFile(extraConf);
        }
        Map<org.neo4j.graphdb.config.Setting<?>, Object> config = new HashMap<>();
        // Embedded mode has no server defaults: set every connector explicitly.
        config.put(BoltConnector.enabled, true);
        config.put(BoltConnector.listen_address, new SocketAddress(listen, boltPort));
        config.put(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", boltPort));
        config.put(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED);
        config.put(HttpConnector.enabled, true);
        config.put(HttpConnector.listen_address, new SocketAddress(listen, httpPort));
        config.put(HttpConnector.advertised_address, new SocketAddress("127.0.0.1", httpPort));
        config.put(HttpsConnector.enabled, false);
        config.put(GraphDatabaseSettings.default_listen_address, new SocketAddress(listen));
        config.put(GraphDatabaseSettings.default_advertised_address, new SocketAddress("127.0.0.1"));
        config.put(GraphDatabaseSettings.auth_enabled, true);
        config.put(GraphDatabaseSettings.pagecache_memory, pagecache);
        config.put(GraphDatabaseSettings.plugin_dir, plugins);
        config.put(GraphDatabaseSettings.procedure_unrestricted, List.of("apoc.*"));
        config.put(GraphDatabaseSettings.udc_enabled, false);
        config.put(GraphDatabaseSettings.logs_directory, home.resolve("logs"));
        // LOAD CSV reads file:/// URLs from <home>/import, like /import in the Docker image.
        config.put(GraphDatabaseSettings.load_csv_file_url_root, home.resolve("import"));
        // Bolt's Netty waits a 2 s quiet period on shutdown by default; not needed for a dev server.
        config.put(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0);
        // Cypher keys its plan cache on each list and string parameter's size bucket (0, 1, 2-10, 11-100, ...) as
        // well as its type, so one query sent with lists of varying length is planned once per combination of
        // buckets. The explanation query has five such lists: on the 3M-interaction world it met 11 combinations in
        // 600 requests, each planned for 1-3 s while other queries waited (docs/benchmarks.md section 5).
        // kgrec's queries bound their lists themselves, so one plan per query and parameter types serves them all.
        config.put(GraphDatabaseInternalSettings.cypher_size_hint_parameters, false);
        builder.setConfig(config);
        builder.setUserLogProvider(new Log4jLogProvider(System.out));

        long t0 = System.nanoTime();
        DatabaseManagementService dbms;
        try {
            dbms = builder.build();
        } catch (Throwable e) {
            System.err.println("KGREC_NEO4J_ERROR failed to start the DBMS: " + e);
            e.printStackTrace();
            System.exit(1);
            return;
        }
        System.out.println("kgrec: DBMS started in " + Duration.ofNanos(System.nanoTime() - t0).toMillis() + " ms");
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("kgrec: shutting down Neo4j");
            dbms.shutdown();
            System.out.println("KGREC_NEO4J_STOPPED");
            System.out.flush();
        }, "kgrec-neo4j-shutdown"));

        try {
            setPassword(dbms, password);
            GraphDatabaseService neo4j = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
            if (!neo4j.isAvailable(readyTimeoutMs)) {
                System.err.println("KGREC_NEO4J_ERROR database 'neo4j' not available after " + readyTimeoutMs + " ms");
                System.exit(1);
            }
        } catch (Throwable e) {
            System.err.println("KGREC_NEO4J_ERROR " + e);
            e.printStackTrace();
            System.exit(1);
        }
        long ms = Duration.ofNanos(System.nanoTime() - t0).toMillis();
        String host = "0.0.0.0".equals(listen) || "::".equals(listen) ? "127.0.0.1" : listen;
        System.out.println(READY + " bolt://" + host + ":" + boltPort + " http://" + host + ":" + httpPort
                + "/browser/ home=" + home + " started_in_ms=" + ms);
        System.out.flush();
        Thread.currentThread().join();
    }

    /** Sets the password of user neo4j via the system database (embedded transactions bypass auth). */
    static void setPassword(DatabaseManagementService dbms, String password) {
        try {
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
            System.out.println("kgrec: password of user neo4j set");
        } catch (RuntimeException e) {
            if (String.valueOf(e.getMessage()).contains("Old password and new password cannot be the same")) {
                System.out.println("kgrec: password of user neo4j unchanged");
            } else {
                throw e;
            }
        }
    }

    static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> out = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (!a.startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value pairs, got: " + a);
            }
            out.put(a.substring(2), argv[++i]);
        }
        return out;
    }

    static String require(Map<String, String> args, String name) {
        String v = args.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + name);
        }
        return v;
    }
}
