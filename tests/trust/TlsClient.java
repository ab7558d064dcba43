// Completes a TLS handshake with HOST:PORT, checking the certificate against the trust
// store named by -Djavax.net.ssl.trustStore and the host name (as HTTPS clients do).
// Exit code 0: trusted; an uncaught exception (exit 1): not trusted.
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

public class TlsClient {
    public static void main(String[] args) throws Exception {
        SSLSocketFactory factory = (SSLSocketFactory) SSLSocketFactory.getDefault();
        try (SSLSocket socket = (SSLSocket) factory.createSocket(args[0], Integer.parseInt(args[1]))) {
            SSLParameters parameters = socket.getSSLParameters();
            parameters.setEndpointIdentificationAlgorithm("HTTPS");
            socket.setSSLParameters(parameters);
            socket.startHandshake();
            System.out.println("handshake ok: " + socket.getSession().getProtocol());
        }
    }
}
