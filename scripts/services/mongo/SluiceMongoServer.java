/*
 * A MongoDB-wire server for sluice's tests: de.bwaldvogel mongo-java-server with its H2
 * (MVStore) backend, persisted in one file, listening on 127.0.0.1 only.
 * Started and stopped by scripts/services/mongo.sh; see docs/services-mongo.md.
 *
 *   java -cp CLASSPATH SluiceMongoServer --data FILE --port P --uri-file FILE
 *
 * With --port 0 the kernel picks a free port. Once the socket is bound,
 * "mongodb://127.0.0.1:PORT/" is written to --uri-file (atomically), so the script learns
 * the port without a race. SIGTERM closes the store cleanly.
 *
 * Three things are added around the library, all for the metadata store's correctness.
 * MongoDB guarantees that a single-document operation is atomic, and the store may rely on
 * it; mongo-java-server alone does not (4 clients x 50 findAndModify {$inc: {n: 1}},
 * new: true, on one document got duplicate "new" values in every run of
 * tests/services/mongo_probe.c, while the stored count was right):
 *  - Every request runs under one lock, so requests of different connections never
 *    interleave inside the backend (without it: 1-5 duplicates of 200 per run).
 *  - The reply document is deep-copied under that lock. The library encodes a reply after
 *    the backend returned it, and a reply may share a document object that the next
 *    request changes in place (without the copy: 8-24 duplicates of 200 per run).
 *  - After every request the MVStore is committed, so an acknowledged write is in the data
 *    file before the reply is sent and survives kill -9 of this process (the library's
 *    default is a background commit about once a second). There is no fsync: a machine
 *    crash may lose it, which tests do not simulate.
 * Serialised requests and a commit each leave ample throughput for tests.
 */
import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.Document;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Set;

public final class SluiceMongoServer {
    private static final String HOST = "127.0.0.1";

    /* Requests after which the store is committed; other calls (close, cursors) are only
     * serialised. */
    private static final Set<String> REQUESTS =
            Set.of("handleCommand", "handleQuery", "handleMessage", "dropDatabase");

    private SluiceMongoServer() {}

    public static void main(String[] args) throws Exception {
        /* Quiet by default: one INFO line per connection otherwise. -D on the command line wins. */
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }

        String data = null;
        String uriFile = null;
        int port = -1;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--data" -> data = args[i + 1];
                case "--port" -> port = Integer.parseInt(args[i + 1]);
                case "--uri-file" -> uriFile = args[i + 1];
                default -> usage("unknown option " + args[i]);
            }
        }
        if (data == null || uriFile == null || port < 0 || port > 65535 || args.length % 2 != 0) {
            usage("--data, --port and --uri-file are required");
        }

        Path dataFile = Path.of(data).toAbsolutePath();
        Files.createDirectories(dataFile.getParent());
        H2Backend backend = new H2Backend(dataFile.toString());
        /* Space of old chunks is reused at once; with the default (45 s) the file grew by
         * ~18 KB per commit (226 MB after 12,000 upserts). Old chunks only protect against a
         * machine crash mid-write; kill -9 during writes was tested with 0. */
        backend.getMvStore().setRetentionTime(0);
        MongoServer server = new MongoServer(serialised(backend));
        try {
            server.bind(HOST, port);
        } catch (Exception e) {
            /* netty rethrows the checked BindException undeclared, and its event loop threads
             * would keep the JVM alive after a failed bind */
            System.err.println("SluiceMongoServer: cannot listen on " + HOST + ":" + port + ": " + e);
            server.shutdownNow();
            backend.close();
            System.exit(1);
        }

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            synchronized (backend) {
                backend.close();
            }
            System.err.println("SluiceMongoServer: stopped");
        }));

        int bound = server.getLocalAddress().getPort();
        String uri = "mongodb://" + HOST + ":" + bound + "/";
        Path target = Path.of(uriFile);
        Path tmp = Path.of(uriFile + ".tmp");
        Files.writeString(tmp, uri + "\n", StandardCharsets.UTF_8);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.err.println("SluiceMongoServer: listening, uri=" + uri + " data=" + dataFile);

        Thread.currentThread().join();
    }

    /* A MongoBackend that runs every call on `backend` under the backend's monitor. */
    private static MongoBackend serialised(H2Backend backend) {
        return (MongoBackend) Proxy.newProxyInstance(
                MongoBackend.class.getClassLoader(),
                new Class<?>[] {MongoBackend.class},
                (proxy, method, a) -> invoke(backend, method, a));
    }

    private static Object invoke(H2Backend backend, Method method, Object[] args) throws Throwable {
        synchronized (backend) {
            try {
                Object result = method.invoke(backend, args);
                return result instanceof Document doc ? doc.cloneDeeply() : result;
            } catch (InvocationTargetException e) {
                throw e.getCause();
            } finally {
                /* Also after a failed request: an ordered bulk may have written before its error. */
                if (REQUESTS.contains(method.getName())) {
                    backend.commit();
                }
            }
        }
    }

    private static void usage(String why) {
        System.err.println("SluiceMongoServer: " + why);
        System.err.println("usage: SluiceMongoServer --data FILE --port P --uri-file FILE");
        System.exit(2);
    }
}
